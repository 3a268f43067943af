"""The API's role check: the viewset's model area + the action, asked of the request's principal."""

from rest_framework import exceptions, permissions

from ..choices import Action, Area
from ..otp import sudo_is_fresh
from ..permissions import Principal

# Reading these areas (API keys, members, SMTP logins; the audit log) needs a verified session, like changes do.
OTP_READ_AREAS = frozenset({Area.ACCESS, Area.AUDIT})

METHOD_ACTIONS = {
    "GET": Action.VIEW,
    "HEAD": Action.VIEW,
    "OPTIONS": Action.VIEW,
    "POST": Action.ADD,
    "PUT": Action.CHANGE,
    "PATCH": Action.CHANGE,
    "DELETE": Action.DELETE,
}

STANDARD_ACTIONS = {None, "list", "retrieve", "create", "update", "partial_update", "destroy", "metadata"}


def required_action(view, request):
    """The permission action a request needs: an @action may name its own (`permission_action=`)."""
    explicit = getattr(view, "permission_action", None)  # set per @action(permission_action=...)
    if explicit:
        return explicit
    if getattr(view, "action", None) not in STANDARD_ACTIONS and request.method not in permissions.SAFE_METHODS:
        return Action.CHANGE  # a verb (@action) on an object changes it unless it says otherwise
    return METHOD_ACTIONS.get(request.method, Action.CHANGE)


class RolePermission(permissions.BasePermission):
    """Authenticated, and some tenant (or the platform) allows this action in the view's area.

    Object-level: the object's tenant allows it. Objects outside every visible tenant never reach
    this check: `restrict()` made them a 404 already.
    """

    message = "Your role does not allow this."

    def has_permission(self, request, view):
        principal = Principal.of(request.user)
        if not principal.is_authenticated:
            return False
        area = view.get_permission_area()
        needs_otp = request.method not in permissions.SAFE_METHODS or area in OTP_READ_AREAS
        if needs_otp and not otp_satisfied(request, principal):
            raise OTPRequired()
        action = required_action(view, request)
        if principal.is_platform:
            return principal.allows(None, area, action)
        if request.method not in permissions.SAFE_METHODS and not getattr(view, "detail", True):
            # A write on the collection (create, or a verb such as messages/batch) acts in the request's tenant:
            # a role in another tenant does not allow it.
            tenant = getattr(request, "tenant", None)
            return tenant is not None and principal.allows(tenant.pk, area, action)
        return bool(principal.tenant_ids_allowing(area, action))

    def has_object_permission(self, request, view, obj):
        principal = Principal.of(request.user)
        tenant_id = getattr(obj, "tenant_id", None)  # a Tenant's tenant_id is itself
        area = view.get_permission_area()
        # The object's tenant may not be the session's current one: an admin there needs OTP all the same.
        needs_otp = request.method not in permissions.SAFE_METHODS or area in OTP_READ_AREAS
        if needs_otp and not otp_satisfied(request, principal, tenant_id):
            raise OTPRequired()
        return principal.allows(tenant_id, area, required_action(view, request))


class SignedIn(permissions.BasePermission):
    """Any authenticated principal (a session or an API key): for views that show nothing of any tenant."""

    def has_permission(self, request, view):
        return Principal.of(request.user).is_authenticated


class OTPRequired(exceptions.PermissionDenied):
    default_detail = "This needs a session verified with your second factor (TOTP): verify at /account/2fa/."
    default_code = "otp_required"


class SudoRequired(exceptions.PermissionDenied):
    default_detail = (
        "This needs a fresh code from your authenticator app (sudo mode): confirm at /account/2fa/sudo/, "
        "then retry within the sudo window."
    )
    default_code = "otp_sudo_required"


def require_fresh_second_factor(request):
    """A session (not an API key) acting on a sensitive verb must have entered a code within OTP_SUDO_SECONDS."""
    principal = Principal.of(request.user)
    if principal.user is not None and not sudo_is_fresh(request):
        raise SudoRequired()


def otp_satisfied(request, principal, tenant_id=None):
    """Owners, admins and superusers change configuration only from an OTP-verified session (keys are exempt).

    `tenant_id` is the tenant acted in (an object's); by default the request's current tenant.
    """
    if tenant_id is None:
        tenant_id = getattr(getattr(request, "tenant", None), "pk", None)
    if not principal.needs_otp(tenant_id):
        return True
    user = principal.user
    return bool(getattr(user, "is_verified", lambda: False)())
