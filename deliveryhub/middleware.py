"""Request id, audit context and the current tenant for every request."""

import re
import uuid

from .audit import AuditContext, _context
from .constants import SESSION_TENANT_KEY
from .permissions import Principal

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def client_ip(request):
    """The client's address. Behind a trusted proxy, configure it to set REMOTE_ADDR (we never trust X-F-F)."""
    return request.META.get("REMOTE_ADDR") or None


class RequestIDMiddleware:
    """Give every request an id (`request.id`, the `X-Request-ID` response header) and an audit context."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = _context.set(AuditContext(request_id=request.id, client_ip=client_ip(request)))
        try:
            response = self.get_response(request)
        finally:
            _context.reset(token)
        response["X-Request-ID"] = request.id
        return response


class TenantMiddleware:
    """Resolve the signed-in user's principal and current tenant (chosen with the tenant switcher)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.principal = Principal.of(request.user)
        request.tenant = current_tenant(request)
        if request.principal.is_authenticated:
            from .audit import set_context

            set_context(principal=request.principal, tenant_id=getattr(request.tenant, "pk", None))
        return self.get_response(request)


def current_tenant(request):
    from .models import Tenant

    principal = request.principal
    if not principal.is_authenticated:
        return None
    wanted = request.session.get(SESSION_TENANT_KEY)
    if wanted is not None and principal.can_see_tenant(wanted):
        tenant = Tenant.objects.filter(pk=wanted, is_active=True).first()
        if tenant is not None:
            return tenant
    if principal.roles:
        return Tenant.objects.filter(pk__in=principal.roles, is_active=True).order_by("name").first()
    return None
