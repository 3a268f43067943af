"""
The event stream: every `MessageEvent` numbered, gap-free, in the order it became visible, and the one JSON shape an
event has (the events API and webhook payloads).

Writers (intake, the delivery engine, the inbound listener, campaigns) insert `MessageEvent` rows and know nothing of
the stream. Their ids come from the database's sequence when the row is inserted, but transactions commit in any
order: a reader paging by event id would skip an event whose transaction commits after a later id was read. So one
sequencer (`sequence_events`, run by the webhook dispatcher every second) numbers events once they are committed:
it locks the `EventStream` row, writes a `StreamEntry` (position = the next number) for each committed event it has
not numbered yet, in id order, and commits. Positions therefore have no gaps and only grow; a reader that has seen
position N has seen every event below it, and an event that committed late gets a later position rather than a lost
one. Readers (`GET /api/v1/events/`, each webhook) page by position.

How far back the sequencer looks: every event id at or below `settled_event_id` is numbered or will never exist. It
moves on to the highest event id the sequencer saw EVENT_STREAM_SETTLE_SECONDS ago (a transaction holding an id
for that long has committed or rolled back), so the scan is the last few minutes of ids, whatever the table's size.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from ..choices import KIND_EVENT_TYPE, PUBLIC_EVENT_KINDS, EventKind
from ..models import EventStream, MessageEvent, StreamEntry

STREAM_ROW = 1
MARKS_KEPT = 1000  # observations kept (one a run: more than the settle window at one run a second)


def _stream_row():
    EventStream.objects.get_or_create(pk=STREAM_ROW)
    return EventStream.objects.select_for_update().get(pk=STREAM_ROW)


def sequence_events(now=None, chunk=None):
    """Number the committed events not in the stream yet (at most `chunk` of them); return how many were numbered."""
    now = now or timezone.now()
    chunk = chunk or settings.EVENT_STREAM_CHUNK
    with transaction.atomic():
        stream = _stream_row()
        settled = stream.settled_event_id
        known = StreamEntry.objects.filter(event_id__gt=settled).values("event_id")
        rows = list(
            MessageEvent.objects.filter(id__gt=settled, kind__in=PUBLIC_EVENT_KINDS)
            .exclude(id__in=known)
            .order_by("id")
            .values_list("id", "kind", "time", "message_id", "message__tenant_id")[:chunk]
        )
        position = stream.last_position
        entries = []
        for event_id, kind, time, message_id, tenant_id in rows:
            position += 1
            entries.append(StreamEntry(position=position, event_id=event_id, tenant_id=tenant_id,
                                       message_id=message_id, kind=kind, time=time))  # fmt: skip
        StreamEntry.objects.bulk_create(entries, batch_size=1000)
        # Move the settled mark: the highest id seen at least the settle window ago (not past a backlog not read yet).
        highest = MessageEvent.objects.aggregate(top=Max("id"))["top"] or 0
        horizon = (now - timedelta(seconds=settings.EVENT_STREAM_SETTLE_SECONDS)).timestamp()
        marks = [mark for mark in stream.marks if mark[1] > settled]
        old = [mark[1] for mark in marks if mark[0] <= horizon]
        if old:
            candidate = max(old)
            if len(rows) == chunk:
                candidate = min(candidate, rows[-1][0])
            settled = max(settled, candidate)
        marks = [mark for mark in marks if mark[0] > horizon or mark[1] > settled][-MARKS_KEPT:]
        marks.append([now.timestamp(), highest])
        stream.last_position, stream.settled_event_id, stream.marks = position, settled, marks
        stream.save(update_fields=["last_position", "settled_event_id", "marks"])
    return len(rows)


def head():
    """The last position handed out (a new webhook starts there: it gets the events that follow)."""
    return EventStream.objects.filter(pk=STREAM_ROW).values_list("last_position", flat=True).first() or 0


def entries():
    """Stream entries with everything `event_json` reads, in stream order."""
    return StreamEntry.objects.select_related("event", "message", "message__content__campaign").only(
        "position", "tenant_id", "kind", "time", "event__id", "event__time", "event__kind", "event__detail",
        "event__data", "message__uuid", "message__rcpt_to", "message__tag", "message__metadata",
        "message__content__campaign__uuid",
    ).order_by("position")  # fmt: skip


def page(queryset, limit):
    """The first `limit` entries of `queryset` (stream entries, filtered) with everything `event_json` reads: the
    keyset first, on the narrow stream table alone (its (tenant, position) indexes), then those rows with their joins,
    so that the LIMIT never waits on a join whatever the planner thinks of the filters. Two queries."""
    positions = list(queryset.order_by("position").values_list("position", flat=True)[:limit])
    return list(entries().filter(position__in=positions)) if positions else []


def event_json(entry):
    """The public shape of one event (API and webhooks): id, type, time, message, recipient, tag, metadata, campaign,
    data (the kind's details)."""
    event, message = entry.event, entry.message
    campaign = message.content.campaign if message.content.campaign_id else None
    data = dict(event.data or {})
    if event.detail:
        data.setdefault("detail", event.detail)
    if event.kind in (EventKind.BOUNCED, EventKind.DSN):
        data["async"] = event.kind == EventKind.DSN  # a bounce report after delivery, or the SMTP reply itself
    if event.kind in (EventKind.RELEASED, EventKind.REQUEUED):
        data["reason"] = "released" if event.kind == EventKind.RELEASED else "lease_expired"
    return {
        "id": event.id,
        "type": KIND_EVENT_TYPE[event.kind],
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "message": str(message.uuid),
        "recipient": message.rcpt_to,
        "tag": message.tag,
        "metadata": message.metadata,
        "campaign": str(campaign.uuid) if campaign else None,
        "data": data,
    }
