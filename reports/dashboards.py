"""
What the monitoring pages show, read from the roll-ups: time series, totals and rates, breakdowns by a dimension,
top reply codes; plus what a page needs from elsewhere (queue, domains' authentication, warm-up, alerts).

A `Scope` says whose numbers: one tenant's (`tenant_id`) or every tenant's (None: operators), narrowed by a domain,
pool, source IP, provider or campaign. Ranges up to 6 h read the minute roll-ups, longer ones the hour roll-ups;
both are grouped in SQL by bucket, so a page reads at most a few thousand rows however much mail was sent.
"""

from dataclasses import dataclass, replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.db.models import Sum
from django.utils import timezone

from ippools.choices import Provider

from .constants import COMPLAINT_RATE_LIMIT, COMPLAINT_RATE_TARGET, TOP_REPLIES
from .models import HourRollup, MinuteRollup, ReplyHour, ReplyMinute

# range name -> (length, step in minutes, label)
RANGES = {
    "1h": (timedelta(hours=1), 1, "Last hour"),
    "6h": (timedelta(hours=6), 5, "Last 6 hours"),
    "24h": (timedelta(hours=24), 60, "Last 24 hours"),
    "7d": (timedelta(days=7), 60, "Last 7 days"),
    "30d": (timedelta(days=30), 360, "Last 30 days"),
}
DEFAULT_RANGE = "24h"
MINUTE_RANGE = timedelta(hours=6)  # longer ranges read the hour roll-ups
SERIES_FIELDS = ("accepted", "attempts", "delivered", "deferred", "bounced", "expired", "complained", "unsubscribed",
                 "opened", "clicked", "delivered_bytes")  # fmt: skip
DIMENSIONS = {"domain": "domain_id", "pool": "pool_id", "source_ip": "source_ip", "provider": "provider",
              "campaign": "campaign_id", "tenant": "tenant_id", "node": "node"}  # fmt: skip
PROVIDERS = tuple(Provider.values)


@dataclass(frozen=True)
class Scope:
    """Whose numbers: a tenant's (or every tenant's: None), optionally one domain, pool, IP, provider or campaign."""

    tenant_id: int | None = None
    domain_id: int | None = None
    pool_id: int | None = None
    source_ip: str | None = None
    provider: str | None = None
    campaign_id: int | None = None

    def filters(self):
        return {name: value for name, value in vars(self).items() if value is not None}

    def narrow(self, **changes):
        return replace(self, **changes)


def parse_range(value):
    return value if value in RANGES else DEFAULT_RANGE


def window(range_name, now=None):
    length, step, _ = RANGES[range_name]
    now = now or timezone.now()
    return now - length, now, step


def _table(since, now):
    """Minute roll-ups for ranges up to MINUTE_RANGE (6 h), hour roll-ups beyond: a day of minute rows over every key
    is a hundred thousand rows, of hour rows a few thousand."""
    fine = since >= now - MINUTE_RANGE
    return (MinuteRollup, ReplyMinute) if fine else (HourRollup, ReplyHour)


def _rows(scope, since, until, now=None):
    model, _ = _table(since, now or timezone.now())
    start = since.replace(second=0, microsecond=0)
    if model is HourRollup:
        start = start.replace(minute=0)
    return model.objects.filter(bucket__gte=start, bucket__lt=until, **scope.filters()).order_by()


def rates(totals):
    """Rates of a dict of counters: delivery, bounce and deferral per attempt; complaint and unsubscribe per
    delivered message; None where the denominator is zero."""

    def ratio(numerator, denominator):
        return totals.get(numerator, 0) / totals[denominator] if totals.get(denominator) else None

    return {
        "delivery_rate": ratio("delivered", "attempts"),
        "bounce_rate": ratio("bounced", "attempts"),
        "deferral_rate": ratio("deferred", "attempts"),
        "complaint_rate": ratio("complained", "delivered"),
        "unsubscribe_rate": ratio("unsubscribed", "delivered"),
    }


def totals(scope, since, until=None):
    until = until or timezone.now()
    sums = _rows(scope, since, until).aggregate(**{name: Sum(name) for name in SERIES_FIELDS})
    sums = {name: value or 0 for name, value in sums.items()}
    return {**sums, **rates(sums)}


def series(scope, range_name, tz=None, now=None):
    """{"labels": [...], "buckets": [iso, …], "rows": [{counter: n}, …], "step": minutes} over the range, every step
    present (zeros where nothing happened), labels in `tz`."""
    since, now, step = window(range_name, now)
    tz = tz or ZoneInfo("UTC")
    grouped = _rows(scope, since, now, now).values("bucket").annotate(**{name: Sum(name) for name in SERIES_FIELDS})
    step_seconds = step * 60
    origin = int(since.timestamp()) // step_seconds * step_seconds
    count = int((now.timestamp() - origin) // step_seconds) + 1
    rows = [dict.fromkeys(SERIES_FIELDS, 0) for _ in range(count)]
    for row in grouped:
        index = (int(row["bucket"].timestamp()) - origin) // step_seconds
        if 0 <= index < count:
            for name in SERIES_FIELDS:
                rows[index][name] += row[name] or 0
    starts = [timezone.datetime.fromtimestamp(origin + i * step_seconds, tz=ZoneInfo("UTC")) for i in range(count)]
    fmt = "%H:%M" if RANGES[range_name][0] <= timedelta(hours=24) else "%m-%d %H:%M"
    for row in rows:
        row.update(rates(row))
    return {
        "step": step,
        "labels": [start.astimezone(tz).strftime(fmt) for start in starts],
        "buckets": [start.isoformat() for start in starts],
        "rows": rows,
        "thresholds": {"complaint_target": COMPLAINT_RATE_TARGET, "complaint_limit": COMPLAINT_RATE_LIMIT},
    }


def breakdown(scope, dimension, since, until=None, limit=None):
    """[{value, counters…, rates…}] per value of `dimension` (domain, pool, source_ip, provider, campaign, tenant),
    most attempts first."""
    until = until or timezone.now()
    column = DIMENSIONS[dimension]
    rows = (
        _rows(scope, since, until)
        .values(column)
        .annotate(**{name: Sum(name) for name in SERIES_FIELDS})
        .order_by("-attempts", "-accepted", column)
    )
    out = []
    for row in rows[:limit] if limit else rows:
        counts = {name: row[name] or 0 for name in SERIES_FIELDS}
        out.append({"value": row[column], **counts, **rates(counts)})
    return out


def breakdowns(scope, dimensions, since, until=None, limit=None):
    """({dimension: rows like `breakdown()`'s}, totals) from one grouped scan of the range: the rows grouped by every
    dimension at once (a few hundred combinations), folded per dimension here."""
    until = until or timezone.now()
    if not dimensions:
        return {}, totals(scope, since, until)
    columns = [DIMENSIONS[d] for d in dimensions]
    grouped = _rows(scope, since, until).values(*columns).annotate(**{name: Sum(name) for name in SERIES_FIELDS})
    folded = {d: {} for d in dimensions}
    sums = dict.fromkeys(SERIES_FIELDS, 0)
    for row in grouped:
        for name in SERIES_FIELDS:
            sums[name] += row[name] or 0
        for dimension, column in zip(dimensions, columns, strict=True):
            target = folded[dimension].setdefault(row[column], dict.fromkeys(SERIES_FIELDS, 0))
            for name in SERIES_FIELDS:
                target[name] += row[name] or 0
    out = {}
    for dimension, values in folded.items():
        rows = [{"value": value, **counts, **rates(counts)} for value, counts in values.items()]
        rows.sort(key=lambda r: (-r["attempts"], -r["accepted"], str(r["value"])))
        out[dimension] = rows[:limit] if limit else rows
    return out, {**sums, **rates(sums)}


def top_replies(scope, since, until=None, *, exclude_delivered=True, limit=TOP_REPLIES):
    """The most frequent (outcome, code, enhanced code, category) of the range, with a sample text."""
    until = until or timezone.now()
    _, model = _table(since, timezone.now())
    filters = {k: v for k, v in scope.filters().items() if k in ("tenant_id", "provider")}
    queryset = model.objects.filter(bucket__gte=since.replace(second=0, microsecond=0), bucket__lt=until, **filters)
    if exclude_delivered:
        queryset = queryset.exclude(status="delivered")
    rows = (
        queryset.values("status", "code", "enhanced_code", "category")
        .annotate(count=Sum("count"))
        .order_by("-count", "code")[:limit]
    )
    out = list(rows)
    for row in out:  # a sample text per reply (the most recent bucket's)
        same = queryset.filter(status=row["status"], code=row["code"], enhanced_code=row["enhanced_code"],
                               category=row["category"])  # fmt: skip
        sample = same.order_by("-bucket").values_list("text", flat=True).first()
        row["text"] = sample or ""
    return out


def columns_for_csv(series_data):
    """Header and rows of a series as a table (what the chart draws, in numbers)."""
    header = ["bucket_start_utc", "label", *SERIES_FIELDS, "delivery_rate", "bounce_rate", "deferral_rate",
              "complaint_rate"]  # fmt: skip
    rows = [header]
    for bucket, label, row in zip(series_data["buckets"], series_data["labels"], series_data["rows"], strict=True):
        rows.append([bucket, label, *(row[name] for name in SERIES_FIELDS),
                     *(_fmt_rate(row[name]) for name in ("delivery_rate", "bounce_rate", "deferral_rate",
                                                         "complaint_rate"))])  # fmt: skip
    return rows


def _fmt_rate(value):
    return "" if value is None else f"{value:.6f}"
