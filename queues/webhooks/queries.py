"""The events API's query parameters, read once for the API and the panel: bad values are a ValidationError that
names the parameter, never a guess."""

import uuid

from django.core.exceptions import ValidationError
from django.db.models.functions import Lower
from django.utils.dateparse import parse_datetime

from ..choices import EVENT_TYPE_KINDS, EventType
from ..models import Message

EVENTS_PAGE_DEFAULT = 100
EVENTS_PAGE_MAX = 1000


def time_param(params, name):
    value = params.get(name)
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise ValidationError({name: "Use an ISO 8601 time with a zone, e.g. 2026-01-31T12:00:00Z."})
    return parsed


def int_param(params, name, default, low, high):
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValidationError({name: "Use a whole number."}) from None
    if not low <= number <= high:
        raise ValidationError({name: f"Use a number from {low} to {high}."})
    return number


def filter_events(queryset, params, principal):
    """The events API's filters over stream entries (shared with the panel's events page). ValidationError for a bad
    value: nothing is guessed."""
    if params.get("type"):
        types = [t.strip() for t in params["type"].split(",") if t.strip()]
        unknown = sorted(set(types) - set(EventType.values))
        if unknown:
            raise ValidationError({"type": f"Unknown event type(s): {', '.join(unknown)}."})
        queryset = queryset.filter(kind__in=[k for t in types for k in EVENT_TYPE_KINDS[t]])
    since, until = time_param(params, "since"), time_param(params, "until")
    if since:
        queryset = queryset.filter(time__gte=since)
    if until:
        queryset = queryset.filter(time__lt=until)
    messages = None
    if params.get("recipient"):
        messages = Message.objects.restrict(principal).annotate(rcpt=Lower("rcpt_to"))
        messages = messages.filter(rcpt=params["recipient"].strip().lower())
    if params.get("tag"):
        messages = (messages if messages is not None else Message.objects.restrict(principal)).filter(tag=params["tag"])
    if messages is not None:
        queryset = queryset.filter(message_id__in=messages.values("pk"))
    for name, lookup in (("campaign", "message__content__campaign__uuid"), ("message", "message__uuid")):
        if params.get(name):
            try:
                value = uuid.UUID(str(params[name]))
            except (ValueError, AttributeError):
                raise ValidationError({name: "Use a UUID."}) from None
            queryset = queryset.filter(**{lookup: value})
    return queryset
