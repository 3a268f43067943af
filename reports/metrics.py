"""
`GET /metrics`: Prometheus text format, built per scrape from the database (prometheus-client's collector API).

Counters come from the running totals the roll-up job keeps (`RollupTotal`, `ReplyTotal`): the same numbers
whichever web process or host answers the scrape, monotonic whatever the roll-up retention, and correct across any
number of delivery workers, which never touch a metrics client. (The alternative, prometheus-client's multiprocess
mode in every worker, counts per host only and loses counts when a worker dies mid-batch; docs/monitoring.md.)
Gauges are measured when scraped (reports/gauges.py). Labels are bounded: tenant (slug), pool (name), source (IP),
provider (four values), and a few states and codes; never a recipient, a message or a campaign.
"""

import ipaddress
import time
from collections import defaultdict

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily

from deliveryhub.models import Job, Tenant
from domains.models import DkimKey, SendingDomain
from ippools.models import IPAddress, IPPool, IPPoolMember, ThrottleState
from queues.models import Campaign

from . import gauges, rollups
from .choices import AlertState
from .constants import LATENCY_BUCKETS, LATENCY_FIELDS
from .models import Alert, AlertRule, ReplyTotal, RollupCursor, RollupTotal

PREFIX = "deliveryhub_"
TOTAL_LABELS = ["tenant", "pool", "source", "provider"]
# counter field -> (metric name without prefix and _total, help)
TOTAL_COUNTERS = {
    "accepted": ("messages_accepted", "Messages (envelope recipients) accepted for delivery."),
    "accepted_bytes": ("accepted_bytes", "Bytes of the messages accepted (per recipient)."),
    "attempts": ("delivery_attempts", "SMTP delivery attempts."),
    "attempts_tls": ("delivery_attempts_tls", "SMTP delivery attempts over TLS."),
    "delivered": ("messages_delivered", "Messages delivered (accepted by the receiving MX)."),
    "delivered_bytes": ("delivered_bytes", "Bytes of the messages delivered."),
    "deferred": ("messages_deferred", "Attempts deferred (temporary failure, retried later)."),
    "bounced": ("messages_bounced", "Messages bounced (5xx during SMTP, or a bounce report later)."),
    "expired": ("messages_expired", "Messages that expired (retry horizon reached)."),
    "complained": ("complaints", "Complaints received (feedback loops)."),
    "unsubscribed": ("unsubscribes", "Unsubscribes (List-Unsubscribe and the unsubscribe page)."),
    "opened": ("opens", "Tracked opens."),
    "clicked": ("clicks", "Tracked clicks."),
}
WAITING = ("queued", "deferred")


def client_allowed(address):
    """Whether a client at `address` may scrape without a key (METRICS_ALLOWED_NETWORKS)."""
    if not address or not settings.METRICS_ALLOWED_NETWORKS:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for network in settings.METRICS_ALLOWED_NETWORKS:
        try:
            if ip in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


class Names:
    """Label values for ids: tenant slugs, pool names, domain names (looked up once per scrape)."""

    def __init__(self):
        self.tenants = dict(Tenant.objects.values_list("pk", "slug"))
        self.pools = dict(IPPool.objects.values_list("pk", "name"))

    def tenant(self, pk):
        return self.tenants.get(pk, str(pk))

    def pool(self, pk):
        return self.pools.get(pk, "") if pk else ""


def _gauge(name, doc, labels=()):
    return GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))


def _counter(name, doc, labels=()):
    return CounterMetricFamily(PREFIX + name, doc, labels=list(labels))


class DatabaseCollector:
    """Every DeliveryHub metric family, read from the database (and Redis for RQ) at scrape time."""

    def collect(self):
        started = time.perf_counter()
        now = timezone.now()
        names = Names()
        yield from self.totals(names)
        yield from self.replies(names)
        yield from self.queue(names, now)
        yield from self.platform(names, now)
        yield from self.infrastructure(names, now)
        yield from self.alerting(names, now)
        duration = _gauge("metrics_scrape_duration_seconds", "Time taken to build this scrape's metrics.")
        duration.add_metric([], time.perf_counter() - started)
        yield duration

    # -- counters from the running totals -------------------------------------------------------------------------
    def totals(self, names):
        families = {field: _counter(name, doc, TOTAL_LABELS) for field, (name, doc) in TOTAL_COUNTERS.items()}
        seconds = _counter("smtp_transaction_seconds", "Time spent in SMTP transactions.", TOTAL_LABELS)
        latency = HistogramMetricFamily(PREFIX + "delivery_latency_seconds", "Accept to delivered time of delivered "
                                        "messages.", labels=["tenant", "provider"])  # fmt: skip
        histograms = {}
        fields = ["tenant_id", "pool_id", "source_ip", "provider", *TOTAL_COUNTERS, "attempt_seconds",
                  "latency_seconds", *LATENCY_FIELDS]  # fmt: skip
        for row in RollupTotal.objects.values(*fields).order_by("tenant_id", "pool_id", "source_ip", "provider"):
            labels = [names.tenant(row["tenant_id"]), names.pool(row["pool_id"]), row["source_ip"], row["provider"]]
            for field, family in families.items():
                family.add_metric(labels, row[field])
            seconds.add_metric(labels, row["attempt_seconds"])
            if row["delivered"]:  # the histogram by (tenant, provider) only: twelve series per label set
                counts = histograms.setdefault((labels[0], labels[3]), [0.0] + [0] * len(LATENCY_FIELDS))
                counts[0] += row["latency_seconds"]
                for index, field in enumerate(LATENCY_FIELDS, start=1):
                    counts[index] += row[field]
        for (tenant, provider), counts in sorted(histograms.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(LATENCY_BUCKETS, counts[1:], strict=False):
                cumulative += count
                buckets.append((str(float(bound)), cumulative))
            buckets.append(("+Inf", cumulative + counts[-1]))
            latency.add_metric([tenant, provider], buckets, counts[0])
        yield from families.values()
        yield seconds
        yield latency

    def replies(self, names):
        replies = _counter("smtp_replies", "SMTP replies (and bounce reports) by outcome and reply code.",
                           ["tenant", "provider", "status", "code"])  # fmt: skip
        categories = _counter("bounces_by_category", "Bounces by classified category.",
                              ["tenant", "provider", "category"])  # fmt: skip
        by_code, by_category = defaultdict(int), defaultdict(int)
        for tenant_id, provider, status, code, category, count in ReplyTotal.objects.values_list(
            "tenant_id", "provider", "status", "code", "category", "count"
        ):
            tenant = names.tenant(tenant_id)
            by_code[(tenant, provider, status, str(code or ""))] += count
            if status == "bounced":
                by_category[(tenant, provider, category or "unclassified")] += count
        for labels, count in sorted(by_code.items()):
            replies.add_metric(list(labels), count)
        for labels, count in sorted(by_category.items()):
            categories.add_metric(list(labels), count)
        yield replies
        yield categories

    # -- the queue ------------------------------------------------------------------------------------------------
    def queue(self, names, now):
        states = _gauge("queue_messages", "Unfinished messages by state (queued, deferred, sending, held).",
                        ["tenant", "state"])  # fmt: skip
        held = _gauge("messages_held", "Held messages (stopped after workers died on them).", ["tenant"])
        by_state = gauges.queue_by_state()
        held_by_tenant = defaultdict(int)
        for (tenant_id, state), n in sorted(by_state.items()):
            states.add_metric([names.tenant(tenant_id), state], n)
            if state == "held":
                held_by_tenant[tenant_id] += n
        for tenant_id, n in held_by_tenant.items():
            held.add_metric([names.tenant(tenant_id)], n)
        oldest = _gauge("queue_oldest_age_seconds", "Age of the oldest queued or deferred message.", ["tenant"])
        for tenant_id, age in sorted(gauges.oldest_waiting(now=now).items()):
            oldest.add_metric([names.tenant(tenant_id)], age)
        by_pool = _gauge("queue_waiting_by_pool", "Queued and deferred messages by the pool they name "
                         "(empty: the tenant's default).", ["pool"])  # fmt: skip
        for pool_id, n in sorted(gauges.queue_by("pool").items()):
            by_pool.add_metric([names.pool(pool_id)], n)
        by_provider = _gauge("queue_waiting_by_provider", "Queued and deferred messages by destination provider.",
                             ["provider"])  # fmt: skip
        for provider, n in sorted(gauges.queue_by("provider").items()):
            by_provider.add_metric([provider], n)
        by_domain = _gauge("queue_waiting_by_domain", "Queued and deferred messages by sending domain.",
                           ["tenant", "domain"])  # fmt: skip
        domains = {pk: (tenant_id, name) for pk, tenant_id, name in
                   SendingDomain.objects.values_list("pk", "tenant_id", "name")}  # fmt: skip
        for domain_id, n in sorted(gauges.queue_by("domain").items()):
            tenant_id, name = domains.get(domain_id, (0, str(domain_id)))
            by_domain.add_metric([names.tenant(tenant_id), name], n)
        yield from (states, held, oldest, by_pool, by_provider, by_domain)

    # -- processes: RQ, nodes, scheduler, stores ------------------------------------------------------------------
    def platform(self, names, now):
        rq = gauges.rq_state()
        jobs = _gauge("rq_queue_jobs", "Jobs waiting in each RQ queue.", ["queue"])
        failed = _gauge("rq_failed_jobs", "Jobs in each RQ queue's failed registry.", ["queue"])
        workers = _gauge("rq_workers", "RQ workers registered in Redis.")
        busy = _gauge("rq_workers_busy", "RQ workers running a job now.")
        if rq is not None:
            for name, n in sorted(rq["queues"].items()):
                jobs.add_metric([name], n)
            for name, n in sorted(rq["failed"].items()):
                failed.add_metric([name], n)
            workers.add_metric([], rq["workers"])
            busy.add_metric([], rq["busy"])
        up = _gauge("node_up", "1 if the delivery node is active and its heartbeat is recent.", ["node"])
        age = _gauge("node_heartbeat_age_seconds", "Seconds since the node's last heartbeat.", ["node"])
        ips = _gauge("node_ips", "Source IP addresses the node owns.", ["node"])
        for node, heartbeat_age, live in gauges.nodes(now):
            up.add_metric([node.name], 1 if live else 0)
            if heartbeat_age is not None:
                age.add_metric([node.name], heartbeat_age)
            ips.add_metric([node.name], node.ip_count)
        scheduler_age = gauges.scheduler_age(now)
        lag = _gauge("scheduler_last_tick_age_seconds", "Seconds since the active scheduler last ticked.")
        scheduler_up = _gauge("scheduler_up", "1 if a scheduler ticked within the readiness limit.")
        if scheduler_age is not None:
            lag.add_metric([], scheduler_age)
        scheduler_up.add_metric([], 1 if scheduler_age is not None
                                and scheduler_age <= settings.READYZ_SCHEDULER_MAX_AGE else 0)  # fmt: skip
        redis_up = _gauge("redis_up", "1 if Redis answers.")
        redis_up.add_metric([], 1 if rq is not None else 0)
        database_up = _gauge("database_up", "1 if the database answers.")
        database_up.add_metric([], 1)
        rollup_lag = _gauge("rollup_lag_seconds", "How far the roll-ups are behind the newest attempts.")
        rollup_lag.add_metric([], rollups.lag_seconds(now))
        cursor = _gauge("rollup_cursor_id", "The highest row id the roll-up job has counted, per source.", ["source"])
        for name, last_id in RollupCursor.objects.values_list("name", "last_id").order_by("name"):
            cursor.add_metric([name], last_id)
        pending = _gauge("jobs_unfinished", "Background jobs (exports, imports, verifications) not finished.",
                         ["status"])  # fmt: skip
        for status, n in Job.objects.filter(status__in=("pending", "running")).values_list("status").annotate(
            n=Count("id")
        ).order_by():
            pending.add_metric([status], n)
        hooks = _gauge("webhooks", "Tenants' event webhooks by state (enabled, failing, disabled).", ["state"])
        for hook_state, n in gauges.webhooks_by_state().items():
            hooks.add_metric([hook_state], n)
        backlog = _gauge("webhook_backlog_events", "Event stream positions enabled webhooks are behind.", ["tenant"])
        for tenant_id, behind in sorted(gauges.webhook_backlog().items()):
            backlog.add_metric([names.tenant(tenant_id)], behind)
        info = InfoMetricFamily(PREFIX + "build", "DeliveryHub build information.")
        info.add_metric([], {"node": settings.NODE_NAME})
        yield from (jobs, failed, workers, busy, up, age, ips, lag, scheduler_up, redis_up, database_up, rollup_lag,
                    cursor, pending, hooks, backlog, info)  # fmt: skip

    # -- IPs, pools, throttles, domains, tenants, campaigns -------------------------------------------------------
    def infrastructure(self, names, now):
        reputation = _gauge("ip_reputation", "Reputation score of the source IP (0-100).", ["source"])
        listed = _gauge("ip_listed", "1 while the source IP is listed on a blocklist.", ["source"])
        state = _gauge("ip_state", "1 for the state the source IP is in.", ["source", "state"])
        warmup = _gauge("ip_warmup_day", "Warm-up day of the source IP (0: not warming up).", ["source"])
        for address, score, is_listed, ip_state, plan, day in IPAddress.objects.values_list(
            "address", "reputation", "listed", "state", "warmup_plan_id", "warmup_day"
        ).order_by("address"):
            reputation.add_metric([address], score)
            listed.add_metric([address], 1 if is_listed else 0)
            state.add_metric([address, ip_state], 1)
            warmup.add_metric([address], day if plan else 0)
        paused = _gauge("pool_members_paused", "Pool members out of rotation (paused or by a listing).", ["pool"])
        members = _gauge("pool_members", "Source IPs in the pool.", ["pool"])
        for pool_id, total, n in IPPoolMember.objects.values_list("pool_id").annotate(
            total=Count("id"), n=Count("id", filter=Q(paused=True) | Q(paused_by_listing=True))
        ).order_by("pool_id"):
            members.add_metric([names.pool(pool_id)], total)
            paused.add_metric([names.pool(pool_id)], n)
        slowed = _gauge("throttle_pairs_slowed", "(source IP, provider) pairs slowed by adaptive throttling.",
                        ["provider"])  # fmt: skip
        suspended = _gauge("throttle_pairs_suspended", "(source IP, provider) pairs suspended now.", ["provider"])
        for provider, n_slow, n_susp in ThrottleState.objects.values_list("provider").annotate(
            n_slow=Count("id", filter=Q(level__gt=0)), n_susp=Count("id", filter=Q(suspended_until__gt=now))
        ).order_by("provider"):
            slowed.add_metric([provider], n_slow)
            suspended.add_metric([provider], n_susp)
        domains = _gauge("sending_domains", "Sending domains by DNS status.", ["tenant", "status"])
        for tenant_id, status, n in SendingDomain.objects.values_list("tenant_id", "status").annotate(
            n=Count("id")
        ).order_by("tenant_id", "status"):
            domains.add_metric([names.tenant(tenant_id), status], n)
        keys = _gauge("dkim_keys", "DKIM keys by state.", ["state"])
        for key_state, n in DkimKey.objects.values_list("state").annotate(n=Count("id")).order_by("state"):
            keys.add_metric([key_state], n)
        tenants = _gauge("tenants", "Tenants, active or not.", ["active"])
        for active, n in Tenant.objects.values_list("is_active").annotate(n=Count("id")).order_by("is_active"):
            tenants.add_metric(["true" if active else "false"], n)
        campaigns = _gauge("campaigns", "Campaigns by state.", ["tenant", "state"])
        for tenant_id, campaign_state, n in Campaign.objects.values_list("tenant_id", "state").annotate(
            n=Count("id")
        ).order_by("tenant_id", "state"):
            campaigns.add_metric([names.tenant(tenant_id), campaign_state], n)
        yield from (reputation, listed, state, warmup, paused, members, slowed, suspended, domains, keys, tenants,
                    campaigns)  # fmt: skip

    def alerting(self, names, now):
        firing = _gauge("alerts_firing", "Alerts firing now, by severity.", ["severity"])
        for severity, n in Alert.objects.filter(state=AlertState.FIRING).values_list("severity").annotate(
            n=Count("id")
        ).order_by("severity"):
            firing.add_metric([severity], n)
        rules = _gauge("alert_rules", "Alert rules, enabled or not.", ["enabled"])
        for enabled, n in AlertRule.objects.values_list("enabled").annotate(n=Count("id")).order_by("enabled"):
            rules.add_metric(["true" if enabled else "false"], n)
        yield firing
        yield rules


def render():
    """The metrics page (Prometheus text exposition format 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
