"""
Health checks for load balancers and orchestrators: `/healthz` (liveness: this process answers) and `/readyz`
(readiness: the database and Redis answer, a scheduler ticked within READYZ_SCHEDULER_MAX_AGE seconds, at least one
delivery node has a live heartbeat). No credentials needed; the answer names each check and whether it passed,
nothing else (no host names, versions or error texts).
"""

from django.conf import settings

from ippools.models import DeliveryNode

from . import gauges


def readiness():
    """(ready, {check: passed})."""
    checks = {"database": gauges.database_ok(), "redis": gauges.redis_ok()}
    if checks["database"]:
        age = gauges.scheduler_age()
        checks["scheduler"] = age is not None and age <= settings.READYZ_SCHEDULER_MAX_AGE
        checks["delivery_node"] = any(node.is_live() for node in DeliveryNode.objects.all())
    else:
        checks["scheduler"] = checks["delivery_node"] = False
    return all(checks.values()), checks
