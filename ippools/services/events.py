"""IP events: the history of an IP (state changes, warm-up steps, listings), each also an audit entry."""

from django.utils import timezone

from deliveryhub import audit

from ..choices import IP_EVENT_AUDIT_ACTIONS
from ..models import IPEvent


def ip_event(ip, kind, message, data=None, *, now=None):
    event = IPEvent.objects.create(ip=ip, kind=kind, message=message, data=data or {}, time=now or timezone.now())
    audit.record(IP_EVENT_AUDIT_ACTIONS[kind], obj=ip, message=message)
    return event
