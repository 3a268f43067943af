"""
Roll-ups: counters per minute (kept 48 h) and per hour (kept 400 days), per tenant, sending domain, IP pool, source
IP, destination provider, campaign and node; reply codes per minute and hour; running totals for /metrics.

The roll-up job (reports/rollups.py) writes them from delivery attempts, message events and accepted messages past
its id watermarks (`RollupCursor`), one upsert per touched key and run, so the delivery path writes nothing extra.
Dimensions are plain ids (0 / "" for none), not foreign keys: an upsert's conflict target must be NOT NULL, and a
counter row outlives the pool or campaign it counted (the numbers of a deleted pool stay in the tenant's history).
"""

from django.db import models
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.querysets import RestrictedQuerySet

# Counters every roll-up row (and running total) carries, in this order (the upsert adds them).
COUNTER_FIELDS = (
    "accepted",
    "accepted_bytes",
    "attempts",
    "attempts_tls",
    "delivered",
    "delivered_bytes",
    "deferred",
    "bounced",
    "expired",
    "complained",
    "unsubscribed",
    "opened",
    "clicked",
    "attempt_seconds",
    "latency_seconds",
    "lat_1s",
    "lat_5s",
    "lat_15s",
    "lat_1m",
    "lat_5m",
    "lat_15m",
    "lat_1h",
    "lat_4h",
    "lat_1d",
    "lat_inf",
)
DIMENSION_FIELDS = ("tenant_id", "domain_id", "pool_id", "source_ip", "provider", "campaign_id", "node")
TOTAL_DIMENSIONS = ("tenant_id", "pool_id", "source_ip", "provider")
REPLY_DIMENSIONS = ("tenant_id", "provider", "status", "code", "enhanced_code", "category")
REPLY_TOTAL_DIMENSIONS = ("tenant_id", "provider", "status", "code", "category")


class RollupQuerySet(RestrictedQuerySet):
    """Roll-ups belong to a tenant by `tenant_id` (a plain id): members read their tenants' rows."""

    def tenant_lookup(self):
        return "tenant_id"


def _counter():
    # Signed: a rebuild corrects running totals by adding a (possibly negative) difference in one upsert.
    return models.BigIntegerField(default=0)


class Counters(models.Model):
    """The counters of one roll-up key. Latency is accept → delivered, one bucket per delivered message
    (`lat_<bound>` holds those at most that long and longer than the previous bound; `lat_inf` the rest)."""

    accepted = _counter()
    accepted_bytes = _counter()
    attempts = _counter()
    attempts_tls = _counter()
    delivered = _counter()
    delivered_bytes = _counter()
    deferred = _counter()
    bounced = _counter()  # SMTP 5xx answers and later bounce reports (DSN)
    expired = _counter()
    complained = _counter()
    unsubscribed = _counter()
    opened = _counter()
    clicked = _counter()
    attempt_seconds = models.FloatField(default=0.0)  # summed SMTP transaction time
    latency_seconds = models.FloatField(default=0.0)  # summed accept → delivered time
    lat_1s = _counter()
    lat_5s = _counter()
    lat_15s = _counter()
    lat_1m = _counter()
    lat_5m = _counter()
    lat_15m = _counter()
    lat_1h = _counter()
    lat_4h = _counter()
    lat_1d = _counter()
    lat_inf = _counter()

    permission_area = Area.SENDING

    objects = RollupQuerySet.as_manager()

    class Meta:
        abstract = True


class DimensionRollup(Counters):
    bucket = models.DateTimeField()
    tenant_id = models.BigIntegerField()
    domain_id = models.BigIntegerField(default=0)
    pool_id = models.BigIntegerField(default=0)
    source_ip = models.CharField(max_length=45, default="", blank=True)
    provider = models.CharField(max_length=16, default="", blank=True)
    campaign_id = models.BigIntegerField(default=0)
    node = models.CharField(max_length=63, default="", blank=True)

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.bucket:%Y-%m-%d %H:%M} tenant {self.tenant_id} {self.provider} {self.source_ip}"


class MinuteRollup(DimensionRollup):
    """Counters of one minute and one key (tenant, domain, pool, source IP, provider, campaign, node)."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", *DIMENSION_FIELDS], name="minuterollup_key")]
        indexes = [models.Index(fields=["tenant_id", "bucket"], name="minuterollup_tenant_bucket")]


class HourRollup(DimensionRollup):
    """Counters of one hour and one key (tenant, domain, pool, source IP, provider, campaign, node)."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", *DIMENSION_FIELDS], name="hourrollup_key")]
        indexes = [models.Index(fields=["tenant_id", "bucket"], name="hourrollup_tenant_bucket")]


class RollupTotal(Counters):
    """Running totals since the first roll-up, per (tenant, pool, source IP, provider): what /metrics exposes as
    Prometheus counters (monotonic whatever the roll-up retention, and the same on every web process)."""

    tenant_id = models.BigIntegerField()
    pool_id = models.BigIntegerField(default=0)
    source_ip = models.CharField(max_length=45, default="", blank=True)
    provider = models.CharField(max_length=16, default="", blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=list(TOTAL_DIMENSIONS), name="rolluptotal_key")]

    def __str__(self):
        return f"tenant {self.tenant_id} pool {self.pool_id} {self.source_ip} {self.provider}"


class ReplyRollupBase(models.Model):
    bucket = models.DateTimeField()
    tenant_id = models.BigIntegerField()
    provider = models.CharField(max_length=16, default="", blank=True)
    status = models.CharField(max_length=10)  # the attempt's outcome: delivered, deferred, bounced (a DSN: bounced)
    code = models.PositiveSmallIntegerField(default=0)  # 0: no reply (connection failed)
    enhanced_code = models.CharField(max_length=12, default="", blank=True)
    category = models.CharField(max_length=40, default="", blank=True)
    count = models.BigIntegerField(default=0)
    text = models.CharField(max_length=200, blank=True)  # the first reply text seen for this key in this bucket

    permission_area = Area.SENDING

    objects = RollupQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.bucket:%Y-%m-%d %H:%M} {self.code} {self.enhanced_code} ×{self.count}"


class ReplyMinute(ReplyRollupBase):
    """SMTP replies of one minute: (tenant, provider, outcome, code, enhanced code, category) → count."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", *REPLY_DIMENSIONS], name="replyminute_key")]
        indexes = [models.Index(fields=["tenant_id", "bucket"], name="replyminute_tenant_bucket")]


class ReplyHour(ReplyRollupBase):
    """SMTP replies of one hour: (tenant, provider, outcome, code, enhanced code, category) → count."""

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", *REPLY_DIMENSIONS], name="replyhour_key")]
        indexes = [models.Index(fields=["tenant_id", "bucket"], name="replyhour_tenant_bucket")]


class ReplyTotal(models.Model):
    """Running count of replies per (tenant, provider, outcome, code, category): /metrics' reply and bounce-category
    counters."""

    tenant_id = models.BigIntegerField()
    provider = models.CharField(max_length=16, default="", blank=True)
    status = models.CharField(max_length=10)
    code = models.PositiveSmallIntegerField(default=0)
    category = models.CharField(max_length=40, default="", blank=True)
    count = models.BigIntegerField(default=0)

    permission_area = Area.SENDING

    objects = RollupQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=list(REPLY_TOTAL_DIMENSIONS), name="replytotal_key")]

    def __str__(self):
        return f"{self.code} {self.category} ×{self.count}"


class RollupCursor(models.Model):
    """How far the roll-up job has read one source table (`attempts`, `events`, `messages`): the highest id counted.

    The job locks its cursors, counts the rows past them, upserts and moves them in one transaction, so every row is
    counted once; `rebuild_rollups` takes the same locks."""

    name = models.CharField(max_length=20, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    last_time = models.DateTimeField(null=True, blank=True)  # time of the newest row counted
    updated = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.name} ≤ {self.last_id}"
