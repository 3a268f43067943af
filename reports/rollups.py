"""
The roll-up job: count what happened since its last run into per-minute and per-hour counters, off the delivery path.

Each run reads the rows past three id watermarks (`RollupCursor`): delivery attempts (attempts, delivered, deferred,
bounced, TLS, SMTP time, accept → delivered latency, reply codes), message events (complaints, unsubscribes, opens,
clicks, expiries, bounce reports) and messages (accepted, bytes). It adds them up in memory per key and writes one
`INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n` per touched key and table, then moves the watermarks, all
in one transaction: a row is counted exactly once, and a crash counts nothing twice. Workers write nothing extra, so
delivery throughput does not depend on it (ROLLUPS_ENABLED turns it off, for the benchmark's comparison).

Ids come from a sequence, but transactions commit out of order: a run stops at the first row younger than
ROLLUP_SETTLE_SECONDS, so a batch still committing is read on the next run. A transaction that takes longer than
that to commit could be passed over; `manage.py rebuild_rollups --since …` recounts any range from the source rows.

A message without a pool of its own counts in the pool the scheduler sends it from (`scheduler.default_pool`: the
tenant's default for its kind of mail, as it stands when the job runs, seconds later). Provider is judged as the
engine judges it (`ippools.providers.provider_for`: the recipient domain, then the MX host
the attempt went to). Events take the source IP, node and MX host of the message's last attempt.
"""

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import FloatField, OuterRef, Subquery
from django.db.models.functions import Substr
from django.utils import timezone

from deliveryhub.models import Tenant
from ippools.providers import provider_for
from queues.choices import AttemptStatus, EventKind
from queues.delivery.scheduler import default_pool
from queues.models import DeliveryAttempt, Message, MessageEvent

from .constants import LATENCY_BUCKETS, LATENCY_FIELDS, REPLY_TEXT_MAX, ROLLUP_CURSORS
from .models import (
    COUNTER_FIELDS,
    DIMENSION_FIELDS,
    HourRollup,
    MinuteRollup,
    ReplyHour,
    ReplyMinute,
    ReplyTotal,
    RollupCursor,
    RollupTotal,
)
from .models.rollups import REPLY_DIMENSIONS, REPLY_TOTAL_DIMENSIONS, TOTAL_DIMENSIONS

logger = logging.getLogger(__name__)

UPSERT_ROWS = 5000  # rows per statement (PostgreSQL: per unnest of arrays; SQLite: per executemany)
EVENT_COUNTERS = {
    EventKind.COMPLAINED: "complained",
    EventKind.UNSUBSCRIBED: "unsubscribed",
    EventKind.OPENED: "opened",
    EventKind.CLICKED: "clicked",
    EventKind.EXPIRED: "expired",
    EventKind.DSN: "bounced",
}
ATTEMPT_COUNTERS = {AttemptStatus.DELIVERED: "delivered", AttemptStatus.DEFERRED: "deferred",
                    AttemptStatus.BOUNCED: "bounced"}  # fmt: skip


@lru_cache(maxsize=20000)
def provider_of(rcpt_domain, mx_host):
    return provider_for(rcpt_domain, [mx_host] if mx_host else ())


def latency_field(seconds):
    for bound, name in zip(LATENCY_BUCKETS, LATENCY_FIELDS, strict=False):
        if seconds <= bound:
            return name
    return LATENCY_FIELDS[-1]


ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


def reply_sample(text):
    """A reply text fit to keep in a roll-up: addresses (recipients' are personal data) replaced, shortened."""
    return ADDRESS.sub("<address>", text or "")[:REPLY_TEXT_MAX]


def minute_of(time):
    return time.replace(second=0, microsecond=0)


def hour_of(time):
    return time.replace(minute=0, second=0, microsecond=0)


def _counts():
    return defaultdict(int)


@dataclass
class Tally:
    """Counters added up in memory, per key and table, before one upsert per key."""

    minute_since: object = None  # minute rows older than this are not written (past the minute retention)
    minutes: dict = field(default_factory=lambda: defaultdict(_counts))
    hours: dict = field(default_factory=lambda: defaultdict(_counts))
    totals: dict = field(default_factory=lambda: defaultdict(_counts))
    reply_minutes: dict = field(default_factory=lambda: defaultdict(int))
    reply_hours: dict = field(default_factory=lambda: defaultdict(int))
    reply_totals: dict = field(default_factory=lambda: defaultdict(int))
    reply_texts: dict = field(default_factory=dict)
    pools: dict = field(default_factory=dict)  # (tenant id, priority) -> the default pool's id (0: none)

    def pool_of(self, tenant_id, priority):
        """The pool a message without one is sent from, as the scheduler picks it (the tenant's default pool for its
        kind of mail), looked up once per run."""
        key = (tenant_id, priority)
        if key not in self.pools:
            pool = default_pool(Tenant.objects.get(pk=tenant_id), priority)
            self.pools[key] = pool.pk if pool is not None else 0
        return self.pools[key]

    def add(self, time, dims, counts):
        """Add `counts` ({counter: n}) at `time` for `dims` (tenant, domain, pool, source IP, provider, campaign,
        node)."""
        keys = [(self.hours, (hour_of(time), *dims)), (self.totals, (dims[0], dims[2], dims[3], dims[4]))]
        if self.minute_since is None or time >= self.minute_since:
            keys.append((self.minutes, (minute_of(time), *dims)))
        for table, key in keys:
            row = table[key]
            for name, value in counts.items():
                row[name] += value

    def reply(self, time, tenant_id, provider, status, code, enhanced, category, text):
        reply = (tenant_id, provider, status, code or 0, enhanced or "", category or "")
        hour_key = (hour_of(time), *reply)
        self.reply_hours[hour_key] += 1
        self.reply_texts.setdefault(hour_key, reply_sample(text))
        if self.minute_since is None or time >= self.minute_since:
            minute_key = (minute_of(time), *reply)
            self.reply_minutes[minute_key] += 1
            self.reply_texts.setdefault(minute_key, reply_sample(text))
        self.reply_totals[(tenant_id, provider, status, code or 0, category or "")] += 1

    def __bool__(self):
        return bool(self.hours or self.reply_hours)


# ---------------------------------------------------------------------------------------------------------------------
# Reading the source rows
# ---------------------------------------------------------------------------------------------------------------------

ATTEMPT_FIELDS = ("id", "time", "status", "node", "source_ip", "mx_host", "tls_version", "code", "enhanced_code",
                  "category", "duration", "short_text", "message__tenant_id", "message__sending_domain_id",
                  "message__ip_pool_id", "message__rcpt_domain", "message__created", "message__send_at",
                  "message__content__size", "message__content__campaign_id", "message__priority")  # fmt: skip


def attempt_rows(after_id, limit, upto_id=None):
    queryset = DeliveryAttempt.objects.filter(id__gt=after_id)
    if upto_id is not None:
        queryset = queryset.filter(id__lte=upto_id)
    return list(
        queryset.annotate(short_text=Substr("text", 1, REPLY_TEXT_MAX))
        .order_by("id")
        .values_list(*ATTEMPT_FIELDS)[:limit]
    )


def tally_attempts(tally, rows):
    for (_, time, status, node, source_ip, mx_host, tls, code, enhanced, category, duration, text, tenant_id,
         domain_id, pool_id, rcpt_domain, created, send_at, size, campaign_id, priority) in rows:  # fmt: skip
        provider = provider_of(rcpt_domain, mx_host)
        pool_id = pool_id or tally.pool_of(tenant_id, priority)
        dims = (tenant_id, domain_id or 0, pool_id, source_ip or "", provider, campaign_id or 0, node or "")
        counts = {"attempts": 1, "attempt_seconds": duration or 0.0}
        if tls:
            counts["attempts_tls"] = 1
        counter = ATTEMPT_COUNTERS.get(status)
        if counter:
            counts[counter] = 1
        if status == AttemptStatus.DELIVERED:
            counts["delivered_bytes"] = size or 0
            start = max(created, send_at) if send_at else created
            latency = max(0.0, (time - start).total_seconds())
            counts["latency_seconds"] = latency
            counts[latency_field(latency)] = 1
        tally.add(time, dims, counts)
        tally.reply(time, tenant_id, provider, status, code, enhanced, category, text)


def _last_attempt(name):
    return Subquery(DeliveryAttempt.objects.filter(message_id=OuterRef("message_id")).order_by("-id").values(name)[:1])


EVENT_FIELDS = ("id", "time", "kind", "data", "detail", "message__tenant_id", "message__sending_domain_id",
                "message__ip_pool_id", "message__rcpt_domain", "message__content__campaign_id", "message__priority",
                "last_ip", "last_mx", "last_node")  # fmt: skip


def event_rows(after_id, limit, upto_id=None):
    """The events past `after_id` (all kinds: the cursor passes every row), with their message's last attempt."""
    queryset = MessageEvent.objects.filter(id__gt=after_id)
    if upto_id is not None:
        queryset = queryset.filter(id__lte=upto_id)
    rows = list(queryset.order_by("id").values_list("id", "time", "kind")[:limit])
    counted = [row[0] for row in rows if row[2] in EVENT_COUNTERS]
    details = {}
    if counted:
        details = {
            row[0]: row
            for row in MessageEvent.objects.filter(id__in=counted)
            .annotate(
                last_ip=_last_attempt("source_ip"), last_mx=_last_attempt("mx_host"), last_node=_last_attempt("node")
            )  # fmt: skip
            .values_list(*EVENT_FIELDS)
        }
    return rows, details


def tally_events(tally, details):
    for (_, time, kind, data, detail, tenant_id, domain_id, pool_id, rcpt_domain, campaign_id, priority, last_ip,
         last_mx, last_node) in details.values():  # fmt: skip
        provider = provider_of(rcpt_domain, last_mx)
        pool_id = pool_id or tally.pool_of(tenant_id, priority)
        dims = (tenant_id, domain_id or 0, pool_id, last_ip or "", provider, campaign_id or 0, last_node or "")
        tally.add(time, dims, {EVENT_COUNTERS[kind]: 1})
        if kind == EventKind.DSN:
            data = data or {}
            tally.reply(time, tenant_id, provider, AttemptStatus.BOUNCED, data.get("code"), data.get("enhanced"),
                        data.get("category"), detail)  # fmt: skip


MESSAGE_FIELDS = ("id", "created", "tenant_id", "sending_domain_id", "ip_pool_id", "rcpt_domain", "content__size",
                  "content__campaign_id", "priority")  # fmt: skip


def message_rows(after_id, limit, upto_id=None):
    queryset = Message.objects.filter(id__gt=after_id)
    if upto_id is not None:
        queryset = queryset.filter(id__lte=upto_id)
    return list(queryset.order_by("id").values_list(*MESSAGE_FIELDS)[:limit])


def tally_messages(tally, rows):
    for _, created, tenant_id, domain_id, pool_id, rcpt_domain, size, campaign_id, priority in rows:
        pool_id = pool_id or tally.pool_of(tenant_id, priority)
        dims = (tenant_id, domain_id or 0, pool_id, "", provider_of(rcpt_domain, ""), campaign_id or 0, "")
        tally.add(created, dims, {"accepted": 1, "accepted_bytes": size or 0})


# ---------------------------------------------------------------------------------------------------------------------
# Writing: one upsert per key
# ---------------------------------------------------------------------------------------------------------------------


def _adapt(value):
    if hasattr(value, "tzinfo"):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def upsert(model, key_fields, rows, add_fields, keep_fields=()):
    """INSERT rows (key tuple + values of `add_fields` + `keep_fields`) or add `add_fields` to the existing row's
    (`keep_fields` keep their first value)."""
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = [*key_fields, *add_fields, *keep_fields]
    updates = ", ".join(f"{quote(name)} = {table}.{quote(name)} + excluded.{quote(name)}" for name in add_fields)
    conflict = ", ".join(quote(name) for name in key_fields)
    if connection.vendor == "postgresql":
        # One statement per table: a column of values per array parameter, unnest()ed into rows.
        fields = {field.column: field for field in model._meta.concrete_fields}
        arrays = ", ".join(f"%s::{fields[name].db_type(connection)}[]" for name in columns)
        sql = (
            f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
        )
        with connection.cursor() as cursor:
            for start in range(0, len(rows), UPSERT_ROWS):
                chunk = rows[start : start + UPSERT_ROWS]
                params = []
                for name, column in zip(columns, zip(*chunk, strict=True), strict=True):
                    floats = isinstance(fields[name], FloatField)  # an array is of one type: 0 becomes 0.0
                    params.append([float(v) for v in column] if floats else list(column))
                cursor.execute(sql, params)
        return
    placeholder = f"({', '.join(['%s'] * len(columns))})"
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) VALUES {placeholder} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPSERT_ROWS):
            cursor.executemany(sql, [[_adapt(value) for value in row] for row in rows[start : start + UPSERT_ROWS]])


def _counter_rows(table):
    return [(*key, *(counts.get(name, 0) for name in COUNTER_FIELDS)) for key, counts in table.items()]


def write(tally):
    """Upsert everything `tally` holds (call inside the transaction that moves the cursors)."""
    upsert(MinuteRollup, ("bucket", *DIMENSION_FIELDS), _counter_rows(tally.minutes), COUNTER_FIELDS)
    upsert(HourRollup, ("bucket", *DIMENSION_FIELDS), _counter_rows(tally.hours), COUNTER_FIELDS)
    upsert(RollupTotal, TOTAL_DIMENSIONS, _counter_rows(tally.totals), COUNTER_FIELDS)
    for model, table in ((ReplyMinute, tally.reply_minutes), (ReplyHour, tally.reply_hours)):
        rows = [(*key, count, tally.reply_texts.get(key, "")) for key, count in table.items()]
        upsert(model, ("bucket", *REPLY_DIMENSIONS), rows, ("count",), ("text",))
    upsert(ReplyTotal, REPLY_TOTAL_DIMENSIONS, [(*k, n) for k, n in tally.reply_totals.items()], ("count",))


# ---------------------------------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------------------------------


def _locked_cursors():
    for name in ROLLUP_CURSORS:
        RollupCursor.objects.get_or_create(name=name)
    return {cursor.name: cursor for cursor in RollupCursor.objects.select_for_update().filter(name__in=ROLLUP_CURSORS)}


def _settled(rows, time_index, cut):
    """The leading rows older than `cut`: a run stops at the first row that may still have uncommitted neighbours."""
    for index, row in enumerate(rows):
        if row[time_index] > cut:
            return rows[:index]
    return rows


def roll_up_chunk(now=None, chunk=None):
    """Count one chunk of each source past its cursor, in one transaction. Returns rows read per source."""
    now = now or timezone.now()
    chunk = chunk or settings.ROLLUP_CHUNK
    cut = now - timedelta(seconds=settings.ROLLUP_SETTLE_SECONDS)
    read = {}
    with transaction.atomic():
        cursors = _locked_cursors()
        tally = Tally(minute_since=now - timedelta(hours=settings.ROLLUP_MINUTE_RETENTION_HOURS))

        rows = _settled(attempt_rows(cursors["attempts"].last_id, chunk), 1, cut)
        tally_attempts(tally, rows)
        _advance(cursors["attempts"], rows, now)
        read["attempts"] = len(rows)

        events, details = event_rows(cursors["events"].last_id, chunk)
        events = _settled(events, 1, cut)
        tally_events(tally, {pk: details[pk] for pk, *_ in events if pk in details})
        _advance(cursors["events"], events, now)
        read["events"] = len(events)

        rows = _settled(message_rows(cursors["messages"].last_id, chunk), 1, cut)
        tally_messages(tally, rows)
        _advance(cursors["messages"], rows, now)
        read["messages"] = len(rows)

        write(tally)
    return read


def _advance(cursor, rows, now):
    if rows:
        cursor.last_id = rows[-1][0]
        cursor.last_time = rows[-1][1]
    cursor.updated = now
    cursor.save()


def roll_up(now=None, max_rows=None):
    """Count everything settled past the cursors, chunk by chunk (each its own transaction), up to `max_rows` rows
    per source in this run. Returns the rows read per source."""
    if not settings.ROLLUPS_ENABLED:
        return {}
    max_rows = max_rows or settings.ROLLUP_MAX_ROWS_PER_RUN
    total = defaultdict(int)
    while True:
        read = roll_up_chunk(now)
        for name, count in read.items():
            total[name] += count
        if max(read.values()) < settings.ROLLUP_CHUNK or max(total.values()) >= max_rows:
            return dict(total)


def prune(now=None):
    """Delete minute roll-ups past ROLLUP_MINUTE_RETENTION_HOURS and hour roll-ups past ROLLUP_HOUR_RETENTION_DAYS."""
    now = now or timezone.now()
    minute_cut = now - timedelta(hours=settings.ROLLUP_MINUTE_RETENTION_HOURS)
    hour_cut = now - timedelta(days=settings.ROLLUP_HOUR_RETENTION_DAYS)
    deleted = 0
    for model, cut in ((MinuteRollup, minute_cut), (ReplyMinute, minute_cut), (HourRollup, hour_cut),
                       (ReplyHour, hour_cut)):  # fmt: skip
        deleted += model.objects.filter(bucket__lt=cut)._raw_delete(model.objects.db)
    return deleted


def lag_seconds(now=None):
    """How far the roll-ups are behind: the age of the oldest attempt past the attempts cursor (0: caught up)."""
    now = now or timezone.now()
    cursor = RollupCursor.objects.filter(name="attempts").first()
    after = cursor.last_id if cursor else 0
    first = DeliveryAttempt.objects.filter(id__gt=after).order_by("id").values_list("time", flat=True).first()
    return max(0.0, (now - first).total_seconds()) if first else 0.0


# ---------------------------------------------------------------------------------------------------------------------
# Rebuilding a range
# ---------------------------------------------------------------------------------------------------------------------


def _first_id_at(model, time_field, since):
    """The smallest id whose row is at or after `since`, by bisection over the primary key (ids grow with time; no
    index on the time columns is needed). Rows are never much out of order, so the caller starts a margin earlier."""
    ids = model.objects.order_by("id").values_list("id", flat=True)
    lo, hi = ids.first(), model.objects.order_by("-id").values_list("id", flat=True).first()
    if lo is None:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        row = model.objects.filter(id__gte=mid).order_by("id").values_list("id", time_field).first()
        if row[1] < since:
            lo = row[0] + 1
        else:
            hi = mid
    return lo


REBUILD_MARGIN = timedelta(hours=1)  # rows are read from this long before `since` (ids and times are nearly in order)


def rebuild(since, until=None, *, chunk=20000, log=None):
    """Recount the roll-ups of [since, until) from attempts, events and messages (up to the cursors: what the job
    counted), replacing the minute and hour rows of that range and correcting the running totals by the difference.
    `since` is rounded down to its hour. Holds the cursors' locks throughout (the job waits)."""
    now = timezone.now()
    since = hour_of(since)
    until = until or now
    tally = Tally(minute_since=max(since, now - timedelta(hours=settings.ROLLUP_MINUTE_RETENTION_HOURS)))
    with transaction.atomic():
        cursors = _locked_cursors()
        for name, model, time_field, read, count in (
            ("attempts", DeliveryAttempt, "time", attempt_rows, tally_attempts),
            ("events", MessageEvent, "time", None, None),
            ("messages", Message, "created", message_rows, tally_messages),
        ):
            start = _first_id_at(model, time_field, since - REBUILD_MARGIN)
            if start is None:
                continue
            after, upto, seen = start - 1, cursors[name].last_id, 0
            while after < upto:
                if name == "events":
                    rows, details = event_rows(after, chunk, upto)
                    picked = {pk: details[pk] for pk, time, _ in rows if pk in details and since <= time < until}
                    tally_events(tally, picked)
                else:
                    rows = read(after, chunk, upto)
                    count(tally, [row for row in rows if since <= row[1] < until])
                if not rows:
                    break
                after = rows[-1][0]
                seen += len(rows)
            if log:
                log(f"{name}: {seen} rows read from id {start}")
        old = defaultdict(_counts)
        hours = HourRollup.objects.filter(bucket__gte=since, bucket__lt=until)
        for row in hours.values(*TOTAL_DIMENSIONS, *COUNTER_FIELDS):
            key = tuple(row[name] for name in TOTAL_DIMENSIONS)
            for name in COUNTER_FIELDS:
                old[key][name] += row[name]
        old_replies = defaultdict(int)
        for row in ReplyHour.objects.filter(bucket__gte=since, bucket__lt=until).values(*REPLY_DIMENSIONS, "count"):
            old_replies[tuple(row[name] for name in REPLY_TOTAL_DIMENSIONS)] += row["count"]
        for model in (HourRollup, ReplyHour):
            model.objects.filter(bucket__gte=since, bucket__lt=until)._raw_delete(model.objects.db)
        for model in (MinuteRollup, ReplyMinute):
            model.objects.filter(bucket__gte=tally.minute_since, bucket__lt=until)._raw_delete(model.objects.db)
        for key, counts in old.items():  # totals: subtract what the range had, then `write` adds the recount
            for name, value in counts.items():
                tally.totals[key][name] -= value
        for key, value in old_replies.items():
            tally.reply_totals[key] -= value
        write(tally)
    return {"hours": len(tally.hours), "minutes": len(tally.minutes)}
