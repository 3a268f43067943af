"""UI views of the core: dashboard, tenant switcher, settings (API keys, members), audit log, background jobs, and
the platform's tenants.

Every view reaches objects through `Model.objects.for_request(request, action)` (`restrict()` plus the current
tenant; tenants and jobs, which span tenants, through `restrict()`): another tenant's object is a 404, a role that
may not act is a 403 (templates/403.html). POST verbs are `deliveryhub.generic_views` views. Writes go through
`deliveryhub.services`; changes by owners and admins need an OTP-verified session.
"""

import secrets
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_otp import user_has_device

from . import services
from .choices import Action, Area, JobStatus, Role
from .constants import SESSION_TENANT_KEY
from .filtersets import AuditLogFilterSet, TenantFilterSet
from .forms import ApiKeyForm, MemberAddForm, MemberRoleForm, TenantForm, role_choices
from .generic_views import ObjectEditView, ObjectListView, ObjectVerbView, PanelView
from .models import ApiKey, AuditEntry, Job, Membership, Tenant
from .otp import otp_required, otp_required_for_change, safe_next, sudo_required
from .tables import TenantTable

AUDIT_PAGE_SIZE = 50  # audit entries per page
DASHBOARD_AUDIT_ENTRIES = 10  # latest audit entries on the dashboard
JOB_REFRESH_SECONDS = 2  # how often a running job's page refreshes its status fragment
APIKEY_FORM_NONCES_KEY = "deliveryhub.apikey_form_nonces"  # session: tokens of API key forms not yet submitted
APIKEY_FORM_NONCES_KEPT = 10  # open API key forms (tabs) remembered per session
AUDIT_EXPORT_BUTTONS_TEMPLATE = "audit/_export_buttons.html"  # provided by reports/ when exports exist
# Cards of the dashboard (rendered with its context): the monitoring card loads its numbers itself (HTMX).
DASHBOARD_CARD_TEMPLATES = ["reports/_dashboard_card.html"]


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def tenant_required(view_func):
    """Pages about the current tenant: without one (a user in no tenant), send the user to the dashboard."""

    @wraps(view_func)
    def wrapper(request, *args, **kwargs):
        if request.tenant is None:
            messages.warning(request, "Select a tenant first.")
            return redirect("dashboard")
        return view_func(request, *args, **kwargs)

    return wrapper


def require(request, area, action):
    """403 unless the principal may perform `action` in `area` of the current tenant."""
    if not request.principal.allows(request.tenant.pk, area, action):
        raise PermissionDenied(f"Your role cannot {action} {Area(area).label.lower()} in {request.tenant}.")


def requires(area, action):
    """Decorator: the role check (403) comes before any OTP detour, so a viewer is refused, not sent to enrol."""

    def decorator(view_func):
        @wraps(view_func)
        def wrapper(request, *args, **kwargs):
            require(request, area, action)
            return view_func(request, *args, **kwargs)

        return wrapper

    return decorator


def may(request, area, action):
    return request.tenant is not None and request.principal.allows(request.tenant.pk, area, action)


def existing_template(name):
    """`name` if a template of that name exists (an optional piece another app provides), else None."""
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return None
    return name


def form_errors_to_messages(request, error):
    for text in getattr(error, "messages", [str(error)]):
        messages.error(request, text)


# ---------------------------------------------------------------------------------------------------------------------
# Dashboard and tenant switcher
# ---------------------------------------------------------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request):
    tenant = request.tenant
    context = {
        "needs_device": not user_has_device(request.user),
        "cards": DASHBOARD_CARD_TEMPLATES if tenant is not None and may(request, Area.SENDING, Action.VIEW) else [],
    }
    if tenant is not None:
        if may(request, Area.ACCESS, Action.VIEW):
            context["member_count"] = Membership.objects.for_request(request).count()
            keys = ApiKey.objects.for_request(request).filter(revoked__isnull=True)
            context["active_key_count"] = keys.filter(Q(expires__isnull=True) | Q(expires__gt=timezone.now())).count()
        if may(request, Area.AUDIT, Action.VIEW):
            context["audit_entries"] = AuditEntry.objects.for_request(request)[:DASHBOARD_AUDIT_ENTRIES]
    return render(request, "dashboard.html", context)


@login_required
@require_POST
def switch_tenant(request):
    """Make another tenant the current one (stored in the session). A tenant the user cannot see is a 404."""
    tenant = get_object_or_404(
        Tenant.objects.restrict(request.principal, Action.VIEW).filter(is_active=True), pk=request.POST.get("tenant")
    )
    request.session[SESSION_TENANT_KEY] = tenant.pk
    return redirect(safe_next(request) or reverse("dashboard"))


# ---------------------------------------------------------------------------------------------------------------------
# Settings: API keys and members
# ---------------------------------------------------------------------------------------------------------------------


@login_required
@require_GET
def settings_index(request):
    return render(
        request,
        "deliveryhub/settings.html",
        {"may_view_access": may(request, Area.ACCESS, Action.VIEW), "has_device": user_has_device(request.user)},
    )


def _new_apikey_form_nonce(request):
    nonce = secrets.token_urlsafe(16)
    kept = request.session.get(APIKEY_FORM_NONCES_KEY, [])[-(APIKEY_FORM_NONCES_KEPT - 1) :]
    request.session[APIKEY_FORM_NONCES_KEY] = [*kept, nonce]
    return nonce


def _use_apikey_form_nonce(request):
    """True the first time a rendered form's token comes back; False for a resubmission (reload, double click)."""
    kept = request.session.get(APIKEY_FORM_NONCES_KEY, [])
    nonce = request.POST.get("nonce", "")
    if nonce not in kept:
        return False
    request.session[APIKEY_FORM_NONCES_KEY] = [n for n in kept if n != nonce]
    return True


def _render_apikeys(request, form=None, status=200):
    tenant, principal = request.tenant, request.principal
    keys = ApiKey.objects.for_request(request).select_related("created_by")
    may_add = may(request, Area.ACCESS, Action.ADD)
    if may_add and form is None:
        form = ApiKeyForm(principal=principal, tenant=tenant)
    context = {
        "keys": keys,
        "form": form if may_add else None,
        "nonce": _new_apikey_form_nonce(request) if may_add else "",
        "may_revoke": may(request, Area.ACCESS, Action.DELETE),
    }
    return render(request, "deliveryhub/apikey_list.html", context, status=status)


@login_required
@tenant_required
@require_GET
@requires(Area.ACCESS, Action.VIEW)
@otp_required  # owners, admins, superusers read who has access only from a verified session
def apikey_list(request):
    return _render_apikeys(request)


@login_required
@tenant_required
@require_POST
@requires(Area.ACCESS, Action.ADD)
@otp_required_for_change
@sudo_required
def apikey_create(request):
    """Create a key and show the raw key in this one response only: it is stored nowhere, not even the session."""
    form = ApiKeyForm(request.POST, principal=request.principal, tenant=request.tenant)
    if not form.is_valid():
        return _render_apikeys(request, form, status=400)
    if not _use_apikey_form_nonce(request):
        messages.warning(request, "This form was already submitted: a key is shown only once. Create another one.")
        return redirect("apikey-list")
    data = form.cleaned_data
    try:
        key, raw = services.create_api_key(
            tenant=request.tenant,
            name=data["name"],
            role=data["role"],
            scope=data["scope"],
            expires=data["expires"],
            allowed_networks=data["allowed_networks"],
            acting_user=request.user,
        )
    except ValidationError as error:
        form_errors_to_messages(request, error)
        return _render_apikeys(request, form, status=400)
    response = render(request, "deliveryhub/apikey_created.html", {"key": key, "raw_key": raw})
    response["Cache-Control"] = "no-store"
    return response


class ApiKeyRevokeView(ObjectVerbView):
    model = ApiKey
    action = Action.DELETE

    def perform(self, request, key):
        services.revoke_api_key(key, acting_user=request.user)
        return f"API key {key.name} ({key.prefix}…) is revoked."

    def success_url(self, key):
        return reverse("apikey-list")

    failure_url = success_url


def _render_members(request, add_form=None, status=200):
    tenant, principal = request.tenant, request.principal
    members = Membership.objects.for_request(request).select_related("user")
    may_add = may(request, Area.ACCESS, Action.ADD)
    if may_add and add_form is None:
        add_form = MemberAddForm(principal=principal, tenant=tenant)
    context = {
        "members": members,
        "add_form": add_form if may_add else None,
        "may_change": may(request, Area.ACCESS, Action.CHANGE),
        "may_remove": may(request, Area.ACCESS, Action.DELETE),
        "grantable_roles": role_choices(principal, tenant),
        "may_touch_owners": principal.is_platform or principal.roles.get(tenant.pk) == Role.OWNER,
    }
    return render(request, "deliveryhub/member_list.html", context, status=status)


@login_required
@tenant_required
@require_GET
@requires(Area.ACCESS, Action.VIEW)
@otp_required  # owners, admins, superusers read who has access only from a verified session
def member_list(request):
    return _render_members(request)


@login_required
@tenant_required
@require_POST
@requires(Area.ACCESS, Action.ADD)
@otp_required_for_change
@sudo_required  # grants a role: a fresh code, like creating a key
def member_add(request):
    form = MemberAddForm(request.POST, principal=request.principal, tenant=request.tenant)
    if form.is_valid():
        data = form.cleaned_data
        try:
            membership = services.add_member_by_email(
                request.tenant, data["email"], data["role"], password=data["password"] or None, acting_user=request.user
            )
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"{membership.user} is now a member ({membership.get_role_display()}).")
            return redirect("member-list")
    return _render_members(request, form, status=400)


class MemberVerbView(ObjectVerbView):
    """A change to one membership; back to the member list either way."""

    model = Membership

    def narrow(self, queryset):
        return queryset.select_related("user", "tenant")

    def success_url(self, membership):
        return reverse("member-list")

    failure_url = success_url


class MemberRoleView(MemberVerbView):
    sudo = True  # a role up or down: a fresh code, like creating a key

    def perform(self, request, membership):
        form = MemberRoleForm(request.POST)
        if not form.is_valid():
            raise ValidationError("Choose a valid role.")
        services.change_role(membership, form.cleaned_data["role"], acting_user=request.user)
        return f"{membership.user} is now {membership.get_role_display()}."


class MemberRemoveView(MemberVerbView):
    action = Action.DELETE

    def perform(self, request, membership):
        services.remove_member(membership, acting_user=request.user)
        return f"{membership.user} is no longer a member of {request.tenant}."


# ---------------------------------------------------------------------------------------------------------------------
# Audit log
# ---------------------------------------------------------------------------------------------------------------------


@login_required
@tenant_required
@require_GET
@requires(Area.AUDIT, Action.VIEW)
@otp_required  # owners, admins, superusers read the audit log only from a verified session
def audit_log(request):
    """The current tenant's audit entries, filtered with the API's filterset, newest first."""
    entries = AuditEntry.objects.for_request(request)
    filterset = AuditLogFilterSet(request.GET or None, queryset=entries)
    page = Paginator(filterset.qs, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "filterset": filterset,
        "page": page,
        "export_buttons_template": existing_template(AUDIT_EXPORT_BUTTONS_TEMPLATE),
        "filtered": any(v for k, v in request.GET.items() if k != "page"),
    }
    return render(request, "deliveryhub/audit_log.html", context)


# ---------------------------------------------------------------------------------------------------------------------
# Background jobs
# ---------------------------------------------------------------------------------------------------------------------


def _job(request, uuid):
    return get_object_or_404(Job.objects.restrict(request.principal, Action.VIEW), uuid=uuid)


def _job_context(request, job):
    has_file = job.status == JobStatus.COMPLETED and bool(job.result_file)
    return {"job": job, "has_file": has_file, "refresh_seconds": JOB_REFRESH_SECONDS}


@login_required
@require_GET
def job_detail(request, uuid):
    job = _job(request, uuid)
    return render(request, "deliveryhub/job_detail.html", _job_context(request, job))


@login_required
@require_GET
def job_status(request, uuid):
    """The status fragment the job page polls (htmx) until the job has finished."""
    job = _job(request, uuid)
    return render(request, "deliveryhub/_job_status.html", _job_context(request, job))


@login_required
@require_GET
def job_download(request, uuid):
    """The file a completed job produced (an export), served only from under MEDIA_ROOT."""
    job = _job(request, uuid)
    if job.status != JobStatus.COMPLETED or not job.result_file:
        raise Http404("This job has no file to download.")
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / job.result_file).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404("The job's file is no longer available.")
    return FileResponse(path.open("rb"), as_attachment=True, filename=job.download_name())


# ---------------------------------------------------------------------------------------------------------------------
# Tenants (platform operators)
# ---------------------------------------------------------------------------------------------------------------------


class TenantListView(ObjectListView):
    model = Tenant
    table_class = TenantTable
    filterset_class = TenantFilterSet
    title = "Tenants"
    add_url_name = "tenant-add"
    description = "Organisations using this DeliveryHub: each owns its domains, messages, keys and members."

    def get_queryset(self, request, action=None):
        owners = Membership.objects.filter(role=Role.OWNER).select_related("user")
        return (
            Tenant.objects.restrict(request.principal, action or Action.VIEW)
            .annotate(member_count=Count("memberships"))
            .prefetch_related(Prefetch("memberships", queryset=owners, to_attr="owner_memberships"))
        )


class TenantEditView(ObjectEditView):
    model = Tenant
    form_class = TenantForm
    list_url_name = "tenant-list"

    def get_queryset(self, request, action=None):
        return Tenant.objects.restrict(request.principal, action or Action.CHANGE)


class TenantDetailView(PanelView):
    """A tenant's members (add, change role, remove: the same services as Settings → Members) and what it owns."""

    model = Tenant

    def get(self, request, pk):
        tenant = get_object_or_404(Tenant.objects.restrict(request.principal, Action.VIEW), pk=pk)
        return render(request, "deliveryhub/tenant_detail.html", self.context(request, tenant))

    def required_action(self, request):
        return Action.CHANGE if request.method == "POST" else Action.VIEW

    def post(self, request, pk):
        """Add a member (operators, from a verified session: PanelView checks both)."""
        tenant = get_object_or_404(Tenant.objects.restrict(request.principal, Action.CHANGE), pk=pk)
        form = MemberAddForm(request.POST, principal=request.principal, tenant=tenant)
        if form.is_valid():
            data = form.cleaned_data
            try:
                membership = services.add_member_by_email(
                    tenant, data["email"], data["role"], password=data["password"] or None, acting_user=request.user
                )
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                role = membership.get_role_display()
                messages.success(request, f"{membership.user} is now a member of {tenant} ({role}).")
                return redirect(tenant.get_absolute_url())
        return render(request, "deliveryhub/tenant_detail.html", self.context(request, tenant, form), status=400)

    def context(self, request, tenant, form=None):
        is_platform = request.principal.is_platform
        return {
            "tenant": tenant,
            "members": tenant.memberships.select_related("user").order_by("user__username"),
            "add_form": form or (MemberAddForm(principal=request.principal, tenant=tenant) if is_platform else None),
            "is_platform": is_platform,
            "counts": {
                "API keys": tenant.api_keys.filter(revoked__isnull=True).count(),
                "dedicated IP pools": tenant.dedicated_ip_pools.count(),
                "shared pools granted": tenant.ip_pool_grants.count(),
            },
        }
