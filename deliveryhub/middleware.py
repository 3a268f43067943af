"""Request id, audit context, session time limits and the current tenant for every request."""

import re
import time
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse

from . import audit
from .audit import AuditContext, _context
from .constants import SESSION_SEEN_KEY, SESSION_STARTED_KEY, SESSION_TENANT_KEY, SESSION_TOUCH_SECONDS
from .errors import database_unavailable, database_unreachable
from .permissions import Principal

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def client_ip(request):
    """The client's address. Behind a trusted proxy, configure it to set REMOTE_ADDR (we never trust X-F-F)."""
    return request.META.get("REMOTE_ADDR") or None


class DatabaseUnavailableMiddleware:
    """A view that found the database unreachable answers 503 with Retry-After, not 500 (API views have DRF's
    exception handler; errors raised by other middleware reach `handler500`, which does the same)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if database_unreachable(exception):
            return database_unavailable(request)
        return None


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


def _duration(seconds):
    """12 hours, 30 minutes, 45 seconds: a limit as people say it."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def start_session_clock(request):
    """Start the session's absolute and idle limits now (at sign-in, or when a session is first seen)."""
    request.session[SESSION_STARTED_KEY] = request.session[SESSION_SEEN_KEY] = time.time()
    request.session.set_expiry(settings.SESSION_IDLE_SECONDS)


class SessionTimeoutMiddleware:
    """Sign a session out SESSION_COOKIE_AGE seconds after sign-in (absolute) or SESSION_IDLE_SECONDS after its last
    activity (idle). Activity is any request but an htmx GET (a page polling in the background does not keep an
    abandoned session alive); it refreshes the idle timer, and the session's expiry, at most once a minute."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            session, now = request.session, time.time()
            started, seen = session.get(SESSION_STARTED_KEY), session.get(SESSION_SEEN_KEY)
            polling = request.method == "GET" and bool(request.headers.get("HX-Request"))
            if started is None or seen is None:
                start_session_clock(request)
            elif now - started > settings.SESSION_COOKIE_AGE:
                return self.expire(request, f"{_duration(settings.SESSION_COOKIE_AGE)} after you signed in")
            elif now - seen > settings.SESSION_IDLE_SECONDS:
                return self.expire(request, f"after {_duration(settings.SESSION_IDLE_SECONDS)} without activity")
            elif now - seen >= SESSION_TOUCH_SECONDS and not polling:
                session[SESSION_SEEN_KEY] = now
                session.set_expiry(settings.SESSION_IDLE_SECONDS)
        return self.get_response(request)

    def expire(self, request, why):
        user = request.user
        audit.record("session.expired", actor=user, message=f"signed out {why}", object_type="auth.user",
                     object_id=str(user.pk), object_repr=user.get_username())  # fmt: skip
        logout(request)
        if request.path.startswith("/api/"):
            return self.get_response(request)  # now anonymous: the API answers 401/403 by itself
        messages.info(request, f"Your session ended {why}: sign in again.")
        response = redirect_to_login(request.get_full_path())
        if request.headers.get("HX-Request"):  # an htmx fragment: make the browser navigate, not swap
            response = HttpResponse(status=204)
            response["HX-Redirect"] = redirect_to_login(request.get_full_path()).url
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
