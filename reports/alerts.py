"""
Alert evaluation and the alerting verbs.

Every minute `evaluate_all()` looks at each enabled rule: a rate rule sums its ratio's numerator and denominator over
the window from the roll-ups (minute roll-ups up to 6 h, hour roll-ups beyond), per group, and judges only groups
with at least `min_volume` in the denominator; a queue rule measures the queue (or the nodes, the scheduler, the
roll-ups) now; an event rule checks that what it was raised for still holds (the IP still listed, the domain still
failing; a warm-up step-back stays open for its window). `apply()` then moves each (rule, key): a new firing opens one
`Alert` (at most one firing per key: a constraint), runs the rule's action and notifies once; a firing one is
reminded after `reminder_minutes`; one no longer true resolves and notifies once.

Notifications are RQ jobs enqueued after the transaction commits (`notify`), one per alert and kind, each writing
an `AlertNotification` per channel. Signals from ippools and domains (reports/receivers.py) call `raise_event()`.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from deliveryhub import audit
from deliveryhub.constants import QUEUE_DEFAULT
from deliveryhub.jobs import get_queue
from deliveryhub.models import Tenant
from domains.choices import DomainStatus
from domains.models import SendingDomain
from ippools.choices import NodeStatus
from ippools.models import DeliveryNode, IPAddress, IPPool
from ippools.providers import provider_for
from ippools.services import pause_ip
from queues.campaigns.services import pause_campaign
from queues.choices import READY_STATUSES, MessageStatus
from queues.models import Campaign, Message, Webhook

from . import channels, gauges, rollups
from .alert_defaults import DEFAULT_RULES, PLATFORM_ONLY_KEYS, rule_fields
from .choices import (
    EVENT_METRICS,
    PLATFORM_ONLY_METRICS,
    QUEUE_METRICS,
    RATE_METRICS,
    AlertAction,
    AlertState,
    Comparison,
    RuleGroupBy,
    RuleMetric,
)
from .models import Alert, AlertNotification, AlertRule, HourRollup, MinuteRollup

logger = logging.getLogger(__name__)

# Windows up to this long are summed from the minute roll-ups; longer ones from the hour roll-ups (from the start of
# the window's first hour: up to an hour more than the window, in exchange for ~60 times fewer rows).
MINUTE_WINDOW_MINUTES = 360
# metric -> (numerator counters, denominator counters)
RATE_DEFINITIONS = {
    RuleMetric.BOUNCE_RATE: (("bounced",), ("attempts",)),
    RuleMetric.DEFERRAL_RATE: (("deferred",), ("attempts",)),
    RuleMetric.DELIVERY_RATE: (("delivered",), ("attempts",)),
    RuleMetric.COMPLAINT_RATE: (("complained",), ("delivered",)),
    RuleMetric.UNSUBSCRIBE_RATE: (("unsubscribed",), ("delivered",)),
    RuleMetric.EXPIRED_RATE: (("expired",), ("delivered", "bounced", "expired")),
}
GROUP_COLUMNS = {RuleGroupBy.TENANT: "tenant_id", RuleGroupBy.DOMAIN: "domain_id", RuleGroupBy.POOL: "pool_id",
                 RuleGroupBy.SOURCE_IP: "source_ip", RuleGroupBy.PROVIDER: "provider",
                 RuleGroupBy.CAMPAIGN: "campaign_id"}  # fmt: skip
KEY_NAMES = {RuleGroupBy.TENANT: "tenant", RuleGroupBy.DOMAIN: "domain", RuleGroupBy.POOL: "pool",
             RuleGroupBy.SOURCE_IP: "ip", RuleGroupBy.PROVIDER: "provider",
             RuleGroupBy.CAMPAIGN: "campaign"}  # fmt: skip


@dataclass
class Observation:
    """One group's state: its key (`provider=google`, "" for the whole scope), value, volume, whether it fires."""

    key: str
    value: float | None
    volume: int | None
    firing: bool
    label: str = ""
    detail: str = ""


def _compare(rule, value):
    if value is None:
        return False
    return value < rule.threshold if rule.comparison == Comparison.BELOW else value > rule.threshold


def _scope_filters(rule):
    filters = {}
    if rule.tenant_id is not None:
        filters["tenant_id"] = rule.tenant_id
    if rule.pool_id:
        filters["pool_id"] = rule.pool_id
    if rule.source_ip:
        filters["source_ip"] = rule.source_ip
    if rule.provider:
        filters["provider"] = rule.provider
    if rule.domain_id:
        filters["domain_id"] = rule.domain_id
    if rule.campaign_id:
        filters["campaign_id"] = rule.campaign_id
    return filters


def _key(rule, value):
    return f"{KEY_NAMES[rule.group_by]}={value}" if rule.group_by else ""


# ---------------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------------


def measure_rate(rule, now):
    numerator, denominator = RATE_DEFINITIONS[rule.metric]
    since = now - timedelta(minutes=rule.window_minutes)
    fine = rule.window_minutes <= MINUTE_WINDOW_MINUTES
    model = MinuteRollup if fine else HourRollup
    start = rollups.minute_of(since) if fine else rollups.hour_of(since)
    queryset = model.objects.filter(bucket__gte=start, bucket__lt=now, **_scope_filters(rule)).order_by()
    sums = {"num": sum_of(numerator), "den": sum_of(denominator)}
    column = GROUP_COLUMNS.get(rule.group_by)
    rows = queryset.values(column).annotate(**sums) if column else [queryset.aggregate(**sums)]
    out = []
    for row in rows:
        group = row[column] if column else None
        if column and group in ("", 0, None) and rule.group_by in (RuleGroupBy.CAMPAIGN, RuleGroupBy.SOURCE_IP,
                                                                    RuleGroupBy.DOMAIN):  # fmt: skip
            continue  # transactional mail has no campaign; events of unsent messages have no IP
        num, den = row["num"] or 0, row["den"] or 0
        value = num / den if den else None
        floor = max(rule.min_volume, 1)
        out.append(Observation(_key(rule, group), value, den, den >= floor and _compare(rule, value),
                               detail=f"{num:,} of {den:,}"))  # fmt: skip
    return out


def sum_of(fields):
    total = None
    for name in fields:
        total = Sum(name) if total is None else total + Sum(name)
    return total


def _queue_queryset(rule):
    queryset = Message.objects.order_by()
    if rule.tenant_id is not None:
        queryset = queryset.filter(tenant_id=rule.tenant_id)
    if rule.pool_id:
        queryset = queryset.filter(ip_pool_id=rule.pool_id)
    if rule.domain_id:
        queryset = queryset.filter(sending_domain_id=rule.domain_id)
    return queryset


QUEUE_GROUP_COLUMNS = {RuleGroupBy.TENANT: "tenant_id", RuleGroupBy.POOL: "ip_pool_id",
                       RuleGroupBy.DOMAIN: "sending_domain_id"}  # fmt: skip


def measure_queue(rule, now):
    metric = rule.metric
    if metric == RuleMetric.NODE_HEARTBEAT_AGE:
        out = []
        for node in DeliveryNode.objects.filter(status=NodeStatus.ACTIVE):
            age = (now - node.last_heartbeat).total_seconds() if node.last_heartbeat else None
            value = age if age is not None else float("inf")
            out.append(Observation(f"node={node.name}", age, None, _compare(rule, value), label=node.name))
        return out
    if metric == RuleMetric.SCHEDULER_LAG:
        age = gauges.scheduler_age(now)
        return [Observation("", age, None, _compare(rule, age if age is not None else float("inf")))]
    if metric == RuleMetric.ROLLUP_LAG:
        lag = rollups.lag_seconds(now) if settings.ROLLUPS_ENABLED else 0.0
        return [Observation("", lag, None, _compare(rule, lag))]
    if metric == RuleMetric.WEBHOOK_BACKLOG:
        return [Observation(_key(rule, tenant_id) if rule.group_by else "", behind, None, _compare(rule, behind))
                for tenant_id, behind in gauges.webhook_backlog(rule.tenant_id).items()]  # fmt: skip
    statuses = (MessageStatus.HELD,) if metric == RuleMetric.HELD_COUNT else READY_STATUSES
    queryset = _queue_queryset(rule).filter(status__in=statuses)
    if rule.provider:  # a provider is judged from the recipient domain: narrow in Python over distinct domains
        names = queryset.values_list("rcpt_domain", flat=True).distinct()
        domains = [name for name in names if provider_for(name) == rule.provider]
        queryset = queryset.filter(rcpt_domain__in=domains)
    column = QUEUE_GROUP_COLUMNS.get(rule.group_by)
    aggregates = {"n": Count("id"), "first": Min("created")}
    rows = queryset.values(column).annotate(**aggregates) if column else [queryset.aggregate(**aggregates)]
    out = []
    for row in rows:
        group = row[column] if column else None
        if metric == RuleMetric.OLDEST_QUEUED_AGE:
            value = (now - row["first"]).total_seconds() if row["first"] else None
        else:
            value = row["n"] or 0
        out.append(Observation(_key(rule, group or 0), value, row["n"], _compare(rule, value)))
    return out


def measure_event(rule, now):
    """Event rules stay open while what raised them holds: listed IPs, failing domains; a step-back for its window."""
    if rule.metric == RuleMetric.IP_LISTED:
        ips = IPAddress.objects.filter(listed=True)
        if rule.tenant_id is not None:
            ips = ips.filter(pk__in=IPAddress.objects.in_pools_of(rule.tenant_id).values("pk"))
        if rule.source_ip:
            ips = ips.filter(address=rule.source_ip)
        if rule.pool_id:
            ips = ips.filter(memberships__pool_id=rule.pool_id)
        return [Observation(f"ip={ip.address}", 1, None, True, label=ip.address, detail=f"listed on {ip.listed_zones}")
                for ip in ips]  # fmt: skip
    if rule.metric == RuleMetric.DOMAIN_FAILING:
        domains = SendingDomain.objects.filter(status=DomainStatus.FAILING)
        if rule.tenant_id is not None:
            domains = domains.filter(tenant_id=rule.tenant_id)
        if rule.domain_id:
            domains = domains.filter(pk=rule.domain_id)
        return [Observation(f"domain={d.pk}", 1, None, True, label=d.name, detail=f"{d.name} is failing")
                for d in domains]  # fmt: skip
    if rule.metric == RuleMetric.WEBHOOK_DISABLED:
        hooks = Webhook.objects.filter(enabled=False).exclude(disabled_reason="")
        if rule.tenant_id is not None:
            hooks = hooks.filter(tenant_id=rule.tenant_id)
        return [Observation(f"webhook={hook.pk}", 1, None, True, label=hook.url[:200], detail=hook.disabled_reason)
                for hook in hooks]  # fmt: skip
    # warm-up step-backs: open ones stay firing for the rule's window after they were raised
    since = now - timedelta(minutes=rule.window_minutes)
    return [Observation(a.key, a.value, None, True, label=a.key_label, detail=a.detail)
            for a in rule.alerts.filter(state=AlertState.FIRING, last_seen_at__gte=since)]  # fmt: skip


def measure(rule, now=None):
    now = now or timezone.now()
    if rule.metric in RATE_METRICS:
        return measure_rate(rule, now)
    if rule.metric in QUEUE_METRICS:
        return measure_queue(rule, now)
    return measure_event(rule, now)


# ---------------------------------------------------------------------------------------------------------------------
# State: open, remind, resolve
# ---------------------------------------------------------------------------------------------------------------------


def _label(rule, key):
    """Words for a key: pool and domain names, tenant names, campaign names."""
    if not key:
        return ""
    name, _, value = key.partition("=")
    if name == "pool":
        pool = IPPool.objects.filter(pk=value or 0).values_list("name", flat=True).first()
        return f"pool {pool or '(default)'}"
    if name == "domain":
        domain = SendingDomain.objects.filter(pk=value or 0).values_list("name", flat=True).first()
        return f"domain {domain or value}"
    if name == "tenant":
        tenant = Tenant.objects.filter(pk=value or 0).values_list("name", flat=True).first()
        return f"tenant {tenant or value}"
    if name == "campaign":
        campaign = Campaign.objects.filter(pk=value or 0).values_list("name", flat=True).first()
        return f"campaign {campaign or value}"
    return f"{name} {value}"


def apply(rule, observations, now=None):
    """Move the rule's alerts to what `observations` say. Returns (opened, reminded, resolved) alerts."""
    now = now or timezone.now()
    opened, reminded, resolved = [], [], []
    if not any(obs.firing for obs in observations) and not rule.alerts.filter(state=AlertState.FIRING).exists():
        return opened, reminded, resolved  # the usual case: nothing fires, nothing to resolve, nothing to lock
    with transaction.atomic():
        AlertRule.objects.select_for_update().filter(pk=rule.pk).first()  # one evaluation of a rule at a time
        open_alerts = {alert.key: alert for alert in rule.alerts.filter(state=AlertState.FIRING)}
        seen = set()
        for obs in observations:
            if not obs.firing:
                continue
            seen.add(obs.key)
            alert = open_alerts.get(obs.key)
            if alert is None:
                alert = _open(rule, obs, now)
                if alert is not None:
                    opened.append(alert)
                continue
            alert.last_seen_at, alert.value, alert.volume = now, obs.value, obs.volume
            alert.detail = obs.detail[:500] or alert.detail
            fields = ["last_seen_at", "value", "volume", "detail"]
            due = rule.reminder_minutes and alert.notified_at and not alert.acknowledged_at and (
                now - alert.notified_at >= timedelta(minutes=rule.reminder_minutes))  # fmt: skip
            if due:
                alert.notified_at = now
                fields.append("notified_at")
                reminded.append(alert)
            alert.save(update_fields=fields)
        for key, alert in open_alerts.items():
            if key not in seen:
                alert.state, alert.resolved_at = AlertState.RESOLVED, now
                alert.save(update_fields=["state", "resolved_at"])
                resolved.append(alert)
        for kind, alerts in (("firing", opened), ("reminder", reminded), ("resolved", resolved)):
            for alert in alerts:
                _notify_after_commit(alert.pk, kind)
    return opened, reminded, resolved


def _open(rule, obs, now):
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                tenant_id=rule.tenant_id, rule=rule, key=obs.key, key_label=(obs.label or _label(rule, obs.key))[:300],
                severity=rule.severity, started_at=now, last_seen_at=now, value=obs.value, volume=obs.volume,
                detail=obs.detail[:500], notified_at=now,
            )  # fmt: skip
    except IntegrityError:  # opened by a concurrent evaluation or event: one firing alert per key
        return None
    if rule.action:
        alert.action_taken = take_action(rule, alert)[:300]
        alert.save(update_fields=["action_taken"])
    return alert


def evaluate(rule, now=None):
    """Measure one rule and apply what it finds (a failing rule is logged, never stops the others)."""
    return apply(rule, measure(rule, now), now)


def evaluate_all(now=None):
    """Every enabled rule, platform and tenants'. Returns counts."""
    now = now or timezone.now()
    counts = {"rules": 0, "opened": 0, "reminded": 0, "resolved": 0, "errors": 0}
    for rule in AlertRule.objects.enabled().order_by("pk"):
        counts["rules"] += 1
        try:
            opened, reminded, resolved = evaluate(rule, now)
        except Exception:
            logger.exception("Evaluating alert rule %s (%s) failed", rule.pk, rule)
            counts["errors"] += 1
            continue
        counts["opened"] += len(opened)
        counts["reminded"] += len(reminded)
        counts["resolved"] += len(resolved)
    # Disabled rules leave nothing firing behind them.
    for alert in Alert.objects.filter(state=AlertState.FIRING, rule__enabled=False):
        Alert.objects.filter(pk=alert.pk).update(state=AlertState.RESOLVED, resolved_at=now)
    return counts


# ---------------------------------------------------------------------------------------------------------------------
# Events (signal receivers call this)
# ---------------------------------------------------------------------------------------------------------------------


def raise_event(metric, *, key, label, detail, tenant_ids=None, ip=None, domain=None, now=None):
    """An event happened (an IP listed, a warm-up stepped back, a domain failing): open an alert for every enabled
    rule of that metric whose scope covers it (platform rules, and the affected tenants' rules)."""
    now = now or timezone.now()
    rules = AlertRule.objects.enabled().filter(metric=metric)
    rules = rules.filter(Q(tenant__isnull=True) | Q(tenant_id__in=list(tenant_ids or [])))
    opened = []
    for rule in rules:
        if rule.source_ip and (ip is None or ip.address != rule.source_ip):
            continue
        if rule.domain_id and (domain is None or domain.pk != rule.domain_id):
            continue
        if rule.pool_id and (ip is None or not ip.memberships.filter(pool_id=rule.pool_id).exists()):
            continue
        obs = Observation(key, 1, None, True, label=label, detail=detail)
        with transaction.atomic():
            existing = rule.alerts.filter(state=AlertState.FIRING, key=key).first()
            if existing is not None:
                Alert.objects.filter(pk=existing.pk).update(last_seen_at=now, detail=detail[:500])
                continue
            alert = _open(rule, obs, now)
            if alert is not None:
                _notify_after_commit(alert.pk, "firing")
                opened.append(alert)
    return opened


def resolve_event(metric, *, key, now=None):
    """What raised an event alert is over (the IP delisted, the domain verified again)."""
    now = now or timezone.now()
    alerts = list(Alert.objects.filter(rule__metric=metric, key=key, state=AlertState.FIRING))
    for alert in alerts:
        with transaction.atomic():
            if Alert.objects.filter(pk=alert.pk, state=AlertState.FIRING).update(state=AlertState.RESOLVED,
                                                                                  resolved_at=now):  # fmt: skip
                _notify_after_commit(alert.pk, "resolved")
    return alerts


# ---------------------------------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------------------------------


def take_action(rule, alert):
    """Pause the IP, the pool's members or the campaign the alert is about (audited as the system acting for the
    rule); returns what was done, in words."""
    name, _, value = alert.key.partition("=")
    reason = f"alert rule “{rule.name}” fired ({alert.detail})"[:200]
    try:
        with transaction.atomic(), audit.acting_as(None):
            if rule.action == AlertAction.PAUSE_IP:
                address = value if name == "ip" else rule.source_ip
                ip = IPAddress.objects.filter(address=address).first()
                if ip is None:
                    return "no IP to pause"
                if ip.state == "paused":
                    return f"{ip} was paused already"
                pause_ip(ip, reason=reason)
                done = f"paused IP {ip}"
            elif rule.action == AlertAction.PAUSE_POOL:
                pool = IPPool.objects.filter(pk=int(value) if name == "pool" and value else rule.pool_id).first()
                if pool is None:
                    return "no pool to pause (the tenant's default pool is not named)"
                count = 0
                for member in pool.members.filter(paused=False):
                    member.paused, member.pause_reason = True, reason
                    member.save()
                    count += 1
                done = f"paused {count} member(s) of pool {pool}"
            elif rule.action == AlertAction.PAUSE_CAMPAIGN:
                campaign = Campaign.objects.filter(pk=int(value) if name == "campaign" and value
                                                   else rule.campaign_id).first()  # fmt: skip
                if campaign is None:
                    return "no campaign to pause"
                pause_campaign(campaign, reason=reason)
                done = f"paused campaign {campaign}"
            else:
                return ""
            audit.record("alert.action", obj=rule, tenant=rule.tenant_id, message=f"{done}: {reason}",
                         postchange={"alert": alert.pk, "action": rule.action, "key": alert.key})  # fmt: skip
            return done
    except Exception as error:  # a Conflict (campaign not sending), a validation error: recorded, not raised
        logger.warning("Alert %s: action %s failed: %s", alert.pk, rule.action, error)
        return f"{rule.get_action_display()} failed: {error}"


# ---------------------------------------------------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------------------------------------------------


def _notify_after_commit(alert_id, kind):
    transaction.on_commit(lambda: get_queue(QUEUE_DEFAULT).enqueue(notify, alert_id, kind))


def payload(alert, kind):
    rule = alert.rule
    return {
        "type": f"alert.{kind}",
        "timestamp": timezone.now().isoformat(),
        "data": {
            "alert_id": alert.pk,
            "rule": rule.name,
            "rule_id": rule.pk,
            "tenant": rule.tenant.slug if rule.tenant_id else None,
            "severity": alert.severity,
            "state": alert.state,
            "key": alert.key,
            "subject": alert.key_label,
            "condition": rule.condition_text(),
            "value": alert.value,
            "volume": alert.volume,
            "detail": alert.detail,
            "started_at": alert.started_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "action_taken": alert.action_taken,
            "url": f"{settings.SITE_URL.rstrip('/')}{alert.get_absolute_url()}",
        },
    }


def describe(alert, kind):
    rule = alert.rule
    verb = {"firing": "FIRING", "reminder": "STILL FIRING", "resolved": "RESOLVED"}[kind]
    about = f" — {alert.key_label}" if alert.key_label else ""
    subject = f"[DeliveryHub {alert.get_severity_display()}] {verb}: {rule.name}{about}"
    value = "" if alert.value is None else (f"{alert.value * 100:.3g} %" if rule.kind == "rate" else f"{alert.value:g}")
    lines = [f"{rule.name}{about}", f"Condition: {rule.condition_text()}", f"Value: {value} ({alert.detail})".rstrip(),
             f"Since: {alert.started_at:%Y-%m-%d %H:%M:%S} UTC"]  # fmt: skip
    if alert.resolved_at:
        lines.append(f"Resolved: {alert.resolved_at:%Y-%m-%d %H:%M:%S} UTC")
    if alert.action_taken:
        lines.append(f"Action: {alert.action_taken}")
    lines.append(f"{settings.SITE_URL.rstrip('/')}{alert.get_absolute_url()}")
    return subject, "\n".join(lines) + "\n"


def notify(alert_id, kind):
    """RQ job: send one notification (firing, reminder, resolved) through each enabled channel of the alert's rule,
    logging each try as an AlertNotification."""
    alert = Alert.objects.select_related("rule", "rule__tenant").filter(pk=alert_id).first()
    if alert is None:
        return 0
    subject, text = describe(alert, kind)
    body = payload(alert, kind)
    sent = 0
    for channel in alert.rule.channels.filter(enabled=True):
        message_id = f"msg_alert_{alert.pk}_{kind}_{alert.notifications + 1}"
        try:
            detail = channels.send(channel, body, subject, text, message_id=message_id)
            ok = True
            sent += 1
        except channels.ChannelError as error:
            detail, ok = str(error), False
        except Exception as error:  # a channel never breaks the others
            logger.exception("Alert %s: channel %s failed", alert.pk, channel.pk)
            detail, ok = f"{type(error).__name__}: {error}", False
        AlertNotification.objects.create(alert=alert, channel=channel, channel_name=channel.name, kind=kind, ok=ok,
                                         detail=detail[:500])  # fmt: skip
        type(channel).objects.filter(pk=channel.pk).update(last_error="" if ok else detail[:500])
    Alert.objects.filter(pk=alert.pk).update(notifications=alert.notifications + 1)
    return sent


# ---------------------------------------------------------------------------------------------------------------------
# Verbs of the panel
# ---------------------------------------------------------------------------------------------------------------------


@transaction.atomic
def acknowledge(alert, *, acting_user):
    """Someone is on it: no reminders for this firing. Audited."""
    if alert.acknowledged_at is not None:
        return alert
    alert.acknowledged_at = timezone.now()
    alert.acknowledged_by = acting_user
    alert.acknowledged_by_name = acting_user.get_username()[:200]
    alert.save(update_fields=["acknowledged_at", "acknowledged_by", "acknowledged_by_name"])
    with audit.acting_as(acting_user):
        audit.record("alert.acknowledge", obj=alert, tenant=alert.tenant_id, message=str(alert)[:200])
    return alert


@transaction.atomic
def install_default_rules(tenant, *, acting_user=None):
    """Give `tenant` its own copies of the shipped rules that make sense for one tenant's mail (skipped: platform-only
    ones and those it has already). Each is audited as a create. Returns the rules created."""
    created = []
    with audit.acting_as(acting_user):
        for rule in DEFAULT_RULES:
            fields = rule_fields(rule)
            if fields["default_key"] in PLATFORM_ONLY_KEYS or fields["metric"] in PLATFORM_ONLY_METRICS:
                continue
            if AlertRule.objects.filter(tenant=tenant, default_key=fields["default_key"]).exists():
                continue
            if fields.get("group_by") == RuleGroupBy.TENANT:
                fields["group_by"] = RuleGroupBy.NONE
            obj = AlertRule(tenant=tenant, **fields)
            obj.full_clean()
            obj.save()
            created.append(obj)
    return created


def preview(rule, now=None, days=None):
    """How often the rule would have fired over the last `days` (ALERT_PREVIEW_DAYS), from the hour roll-ups:
    {"available", "firings", "hours_firing", "hours", "groups"}. Rate rules only (queue and event rules: the alert
    history says how often they fired)."""
    days = days or settings.ALERT_PREVIEW_DAYS
    now = now or timezone.now()
    if rule.metric not in RATE_METRICS:
        since = now - timedelta(days=days)
        return {"available": False, "history": rule.alerts.filter(started_at__gte=since).count() if rule.pk else 0}
    numerator, denominator = RATE_DEFINITIONS[rule.metric]
    window_hours = max(1, -(-rule.window_minutes // 60))
    end = rollups.hour_of(now)
    start = end - timedelta(days=days) - timedelta(hours=window_hours - 1)
    column = GROUP_COLUMNS.get(rule.group_by)
    values = ["bucket", column] if column else ["bucket"]
    rows = (HourRollup.objects.filter(bucket__gte=start, bucket__lte=end, **_scope_filters(rule)).order_by()
            .values(*values).annotate(num=sum_of(numerator), den=sum_of(denominator)))  # fmt: skip
    hours = int((end - start).total_seconds() // 3600) + 1
    groups = {}
    for row in rows:
        series = groups.setdefault(row[column] if column else None, [[0, 0] for _ in range(hours)])
        index = int((row["bucket"] - start).total_seconds() // 3600)
        series[index][0] += row["num"] or 0
        series[index][1] += row["den"] or 0
    firings = hours_firing = 0
    floor = max(rule.min_volume, 1)
    for group, series in groups.items():
        if column and group in ("", 0, None) and rule.group_by != RuleGroupBy.POOL:
            continue
        was = False
        num = den = 0
        for index in range(hours):
            num += series[index][0]
            den += series[index][1]
            if index >= window_hours:
                num -= series[index - window_hours][0]
                den -= series[index - window_hours][1]
            if index < window_hours - 1:
                continue
            firing = den >= floor and _compare(rule, num / den if den else None)
            if firing and not was:
                firings += 1
            hours_firing += firing
            was = firing
    return {"available": True, "firings": firings, "hours_firing": hours_firing, "hours": hours - window_hours + 1,
            "groups": len(groups), "days": days}  # fmt: skip


__all__ = ["EVENT_METRICS", "acknowledge", "apply", "evaluate", "evaluate_all", "install_default_rules", "measure",
           "notify", "preview", "raise_event", "resolve_event", "take_action"]  # fmt: skip
