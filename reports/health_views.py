"""`/healthz`, `/readyz` and `/metrics`: answered without a session (load balancers, Prometheus)."""

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from deliveryhub.middleware import client_ip
from deliveryhub.services import authenticate_api_key

from . import health, metrics


@never_cache
@require_GET
def healthz(request):
    """Liveness: the process runs and answers."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """Readiness: 200 when every check passes, else 503; each check's result in the body."""
    ready, checks = health.readiness()
    body = {"status": "ok" if ready else "unavailable", "checks": {name: "ok" if passed else "fail"
                                                                   for name, passed in checks.items()}}  # fmt: skip
    return JsonResponse(body, status=200 if ready else 503)


def _refused(status, text):
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@never_cache
@require_GET
def metrics_view(request):
    """Prometheus metrics, for a platform API key (`Authorization: Bearer dh_op_…`) or a client in
    METRICS_ALLOWED_NETWORKS."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, raw = header.partition(" ")
        key = authenticate_api_key(raw.strip(), client_ip(request)) if scheme == "Bearer" else None
        if key is None:
            return _refused(401, "Invalid, expired or revoked API key.")
        if not key.is_platform:
            return _refused(403, "Metrics need a platform API key (manage.py create_api_key --platform).")
    elif not metrics.client_allowed(client_ip(request)):
        return _refused(401, "Metrics need a platform API key, or a client in DELIVERYHUB_METRICS_ALLOWED_NETWORKS.")
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)  # every Prometheus reads 0.0.4
