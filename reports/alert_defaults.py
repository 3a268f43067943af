"""
The alert rules DeliveryHub ships: installed as platform rules by migration 0003 (editable, disable-able), and
offered to each tenant ("Add the recommended rules": the ones that make sense for a tenant's own mail).

Rates are ratios with a volume floor, not raw counts: ten bounces are a disaster for a tenant sending fifty messages
and noise for one sending a million. Thresholds follow the mailbox providers' published limits (Gmail and Yahoo bulk
sender rules: complaints below 0.3 %, ideally below 0.1 %) and common operator practice (bounces below 2-5 %).
Plain data (no imports): the migration reads it as it stands.
"""

DEFAULT_RULES = [
    {"default_key": "complaint-rate-provider", "name": "Complaint rate per provider above 0.1 %",
     "metric": "complaint_rate", "threshold": 0.001, "window_minutes": 1440, "min_volume": 1000,
     "group_by": "provider", "severity": "warning",
     "description": "Gmail's target: stay below 0.1 % of delivered mail reported as spam (24 h, ≥ 1,000 delivered)."},
    {"default_key": "complaint-rate-provider-limit", "name": "Complaint rate per provider above 0.3 %",
     "metric": "complaint_rate", "threshold": 0.003, "window_minutes": 1440, "min_volume": 1000,
     "group_by": "provider", "severity": "critical",
     "description": "Gmail and Yahoo start rejecting bulk mail of senders above 0.3 %."},
    {"default_key": "complaint-rate-tenant", "name": "Complaint rate per tenant above 0.1 %",
     "metric": "complaint_rate", "threshold": 0.001, "window_minutes": 1440, "min_volume": 1000,
     "group_by": "tenant", "severity": "warning", "platform_only": True,
     "description": "One tenant's complaints hurt the shared IPs' reputation for every tenant."},
    {"default_key": "bounce-rate-pool", "name": "Bounce rate per pool above 5 %",
     "metric": "bounce_rate", "threshold": 0.05, "window_minutes": 15, "min_volume": 200, "group_by": "pool",
     "severity": "critical", "description": "A burst of bounces from one pool: a bad list, or a block by a receiver."},
    {"default_key": "bounce-rate-ip", "name": "Bounce rate per source IP above 8 %",
     "metric": "bounce_rate", "threshold": 0.08, "window_minutes": 60, "min_volume": 200, "group_by": "source_ip",
     "severity": "warning", "description": "One IP bouncing more than its pool: look at its blocklist listings."},
    {"default_key": "bounce-rate-domain", "name": "Bounce rate per sending domain above 10 %",
     "metric": "bounce_rate", "threshold": 0.10, "window_minutes": 60, "min_volume": 100, "group_by": "domain",
     "severity": "warning", "description": "A sending domain's mail bouncing: its list or its authentication."},
    {"default_key": "bounce-rate-campaign", "name": "Bounce rate per campaign above 5 %",
     "metric": "bounce_rate", "threshold": 0.05, "window_minutes": 60, "min_volume": 500, "group_by": "campaign",
     "severity": "warning", "description": "A campaign to an old or bought list (pause it with the rule's action)."},
    {"default_key": "deferral-rate-provider", "name": "Deferral rate to one provider above 30 %",
     "metric": "deferral_rate", "threshold": 0.30, "window_minutes": 15, "min_volume": 200, "group_by": "provider",
     "severity": "warning", "description": "A provider throttling or greylisting us (rate limits, reputation)."},
    {"default_key": "deferral-rate-ip", "name": "Deferral rate per source IP above 50 %",
     "metric": "deferral_rate", "threshold": 0.50, "window_minutes": 30, "min_volume": 100, "group_by": "source_ip",
     "severity": "warning", "description": "Most of one IP's attempts deferred: it may be listed or rate limited."},
    {"default_key": "delivery-rate-tenant", "name": "Delivery rate below 80 %",
     "metric": "delivery_rate", "comparison": "lt", "threshold": 0.80, "window_minutes": 60, "min_volume": 500,
     "group_by": "tenant", "severity": "warning", "platform_only": True,
     "description": "Less than four in five attempts delivered over an hour."},
    {"default_key": "unsubscribe-rate-campaign", "name": "Unsubscribe rate per campaign above 2 %",
     "metric": "unsubscribe_rate", "threshold": 0.02, "window_minutes": 1440, "min_volume": 1000,
     "group_by": "campaign", "severity": "info", "description": "Recipients leaving a campaign in numbers."},
    {"default_key": "expired-rate", "name": "Expired messages above 1 %",
     "metric": "expired_rate", "threshold": 0.01, "window_minutes": 1440, "min_volume": 500, "group_by": "tenant",
     "severity": "warning", "platform_only": True,
     "description": "Mail given up after the retry horizon: a destination unreachable for days."},
    {"default_key": "queue-age", "name": "Oldest queued message older than 30 minutes",
     "metric": "oldest_queued_age", "threshold": 1800, "group_by": "tenant", "severity": "critical",
     "description": "Mail is not leaving: workers down, a pool without usable IPs, or throttles."},
    {"default_key": "queue-held", "name": "More than 10 held messages",
     "metric": "held_count", "threshold": 10, "group_by": "tenant", "severity": "warning",
     "description": "Messages held after workers died on them: release them once the cause is fixed."},
    {"default_key": "queue-depth", "name": "More than 100,000 messages waiting",
     "metric": "queued_count", "threshold": 100000, "group_by": "tenant", "severity": "info",
     "description": "A large backlog (a campaign, or delivery slower than intake)."},
    {"default_key": "ip-listed", "name": "Source IP listed on a blocklist",
     "metric": "ip_listed", "threshold": 0, "window_minutes": 1440, "severity": "critical",
     "description": "A DNSBL lists one of our IPs (pools pause listed members when set to)."},
    {"default_key": "warmup-stepped-back", "name": "Warm-up stepped back",
     "metric": "warmup_stepped_back", "threshold": 0, "window_minutes": 1440, "severity": "warning",
     "description": "An IP's warm-up went back a day: its bounce, deferral or complaint rate was too high."},
    {"default_key": "domain-failing", "name": "Sending domain DNS check failing",
     "metric": "domain_failing", "threshold": 0, "window_minutes": 1440, "severity": "critical",
     "description": "A verified domain's DKIM no longer checks out: its mail will fail DMARC."},
    {"default_key": "webhook-backlog", "name": "Webhook more than 10,000 events behind",
     "metric": "webhook_backlog", "threshold": 10000, "group_by": "tenant", "severity": "warning",
     "description": "A tenant's webhook endpoint is not keeping up (slow, failing, or backing off)."},
    {"default_key": "webhook-disabled", "name": "Webhook endpoint disabled",
     "metric": "webhook_disabled", "threshold": 0, "window_minutes": 1440, "severity": "warning",
     "description": "A webhook was turned off after failing for a day or answering 410: its events wait."},
    {"default_key": "node-heartbeat", "name": "Delivery node heartbeat lost",
     "metric": "node_heartbeat_age", "threshold": 120, "severity": "critical", "platform_only": True,
     "description": "No heartbeat from an active node for two minutes: its IPs send nothing."},
    {"default_key": "scheduler-lag", "name": "Scheduler not ticking",
     "metric": "scheduler_lag", "threshold": 120, "severity": "critical", "platform_only": True,
     "description": "No scheduler renewed its lease for two minutes: nothing is handed to workers."},
    {"default_key": "rollup-lag", "name": "Roll-ups more than 10 minutes behind",
     "metric": "rollup_lag", "threshold": 600, "severity": "warning", "platform_only": True,
     "description": "Dashboards, metrics and rate alerts are late (the roll-up job is off, slow or failing)."},
]  # fmt: skip

PLATFORM_ONLY_KEYS = frozenset(rule["default_key"] for rule in DEFAULT_RULES if rule.get("platform_only"))


def rule_fields(rule):
    """The model fields of a default rule (without the `platform_only` marker)."""
    return {key: value for key, value in rule.items() if key != "platform_only"}
