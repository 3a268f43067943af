"""Template context shared by every page: the current tenant, the tenants the user may switch to, the user's role
there and whether their roles require a second factor."""

from .models import Tenant


def tenancy(request):
    principal = getattr(request, "principal", None)
    if principal is None or not principal.is_authenticated:
        return {}
    tenants = Tenant.objects.restrict(principal, "view").filter(is_active=True).order_by("name")
    role = principal.roles.get(getattr(request.tenant, "pk", None))
    return {
        "current_tenant": request.tenant,
        "switchable_tenants": tenants,
        "current_role": role or ("operator" if principal.is_platform else None),
        "second_factor_required": principal.needs_otp(),  # owners, admins, operators: 2FA before anything else
    }
