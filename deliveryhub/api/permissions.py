"""The API's role check: the viewset's model area + the action, asked of the request's principal."""

from rest_framework import exceptions, permissions

from ..choices import Action
from ..permissions import Principal

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
        if request.method not in permissions.SAFE_METHODS and not otp_satisfied(request, principal):
            raise OTPRequired()
        area = view.get_permission_area()
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
        # The object's tenant may not be the session's current one: an admin there needs OTP all the same.
        if request.method not in permissions.SAFE_METHODS and not otp_satisfied(request, principal, tenant_id):
            raise OTPRequired()
        return principal.allows(tenant_id, view.get_permission_area(), required_action(view, request))


class OTPRequired(exceptions.PermissionDenied):
    default_detail = "This change needs a session verified with your second factor (TOTP): verify at /account/2fa/."
    default_code = "otp_required"


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
