"""Warm-up: putting an IP on a plan and stepping it once per local day by the last day's outcomes."""

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from deliveryhub import audit

from .. import signals
from ..choices import IPEventKind, IPState, Provider
from ..constants import TOTAL, WARMUP_SEVERE_FACTOR
from ..models import IPAddress, IPDailyUsage, WarmupPlan
from .events import ip_event
from .selection import usage_today

logger = logging.getLogger(__name__)


def announce_capacity_change(sender, reason):
    """After commit, tell the apps that hold mail for capacity (queues) to look at it again now."""
    transaction.on_commit(lambda: signals.capacity_changed.send(sender, reason=reason))


@transaction.atomic
def start_warmup(ip, plan, *, day=1, acting_user=None, now=None):
    """Put an IP on a warm-up plan at `day` (state `warming`), or move it to another plan or day; its current day is
    today in its time zone. Takes effect at once: mail waiting for capacity is looked at again."""
    with audit.acting_as(acting_user):
        if not 1 <= day <= plan.length:
            raise ValidationError({"day": f"The plan has days 1 to {plan.length}."})
        ip.warmup_plan, ip.warmup_day, ip.state = plan, day, IPState.WARMING
        ip.warmup_last_step = ip.local_date(now)
        ip.full_clean()
        ip.save()
        message = f"Warm-up started on plan {plan.name}, day {day} of {plan.length}."
        ip_event(ip, IPEventKind.WARMUP_START, message, {"plan": plan.pk, "day": day}, now=now)
        announce_capacity_change(IPAddress, f"warm-up of {ip} on {plan.name} day {day}")
        return ip


@transaction.atomic
def stop_warmup(ip, *, acting_user=None, now=None):
    """Take a warming IP off its plan at once: `active`, without caps from now on (mail held for its warm-up cap is
    looked at again now, not at the next local midnight)."""
    with audit.acting_as(acting_user):
        if ip.state != IPState.WARMING:
            raise ValidationError({"state": f"{ip} is not warming up ({ip.get_state_display().lower()})."})
        plan, day = ip.warmup_plan, ip.warmup_day
        ip.state, ip.warmup_plan, ip.warmup_day, ip.warmup_last_step = IPState.ACTIVE, None, 1, None
        ip.full_clean()
        ip.save()
        name = plan.name if plan else "no plan"
        message = f"Warm-up stopped at day {day} of {name}: the IP is active without caps."
        ip_event(ip, IPEventKind.WARMUP_STOP, message, {"plan": getattr(plan, "pk", None), "day": day}, now=now)
        announce_capacity_change(IPAddress, f"warm-up of {ip} stopped")
        return ip


@transaction.atomic
def save_warmup_plan(plan, *, acting_user=None):
    """Create or change a warm-up plan (its days table validated by `WarmupPlan.clean()`); IPs on it use the new caps
    at once, and mail held for their old caps is looked at again now."""
    with audit.acting_as(acting_user):
        plan.full_clean()
        plan.save()
        announce_capacity_change(WarmupPlan, f"warm-up plan {plan} changed")
        return plan


def warmup_schedule(ip, plan, *, day=1, now=None):
    """The preview of a warm-up before it starts: [(day, earliest local date, caps)] from `day` to the plan's end.

    A day only follows the one before when that stayed under the plan's thresholds, so the dates are the earliest."""
    start = ip.local_date(now)
    return [(n, start + timedelta(days=n - day), plan.caps_for_day(n)) for n in range(day, plan.length + 1)]


def warmup_status(ip, now=None, used=None):
    """Where an IP stands in its warm-up, for the panel: plan, day N of M, and today's use against each cap
    (`bars`: [{name, used, cap, percent}]); None when the IP is not warming up. `used`: its `usage_today` when the
    caller read many at once (`usage_today_many`)."""
    progress = ip.warmup_progress()
    if progress is None:
        return None
    caps = ip.warmup_caps()
    used = usage_today(ip, now) if used is None else used
    bars = [
        {"name": key, "used": used.get(key, 0), "cap": cap,
         "percent": min(100, round(100 * used.get(key, 0) / cap)) if cap else 100}
        for key in (TOTAL, *Provider.values)
        if (cap := caps.get(key)) is not None
    ]  # fmt: skip
    day, days = progress
    return {"plan": ip.warmup_plan, "day": day, "days": days, "percent": round(100 * day / days), "bars": bars}


def day_outcomes(ip, day):
    """Totals of an IP's recorded outcomes on one local day."""
    totals = IPDailyUsage.objects.filter(ip=ip, date=day).aggregate(
        delivered=Sum("delivered"), bounced=Sum("bounced"), deferred=Sum("deferred"), complained=Sum("complained")
    )
    return {key: value or 0 for key, value in totals.items()}


def outcome_rates(outcomes):
    """(bounce, deferral, complaint) rates: bounces and deferrals per attempt, complaints per delivered message."""
    attempts = outcomes["delivered"] + outcomes["bounced"] + outcomes["deferred"]
    if not attempts:
        return None
    complaint = (
        outcomes["complained"] / outcomes["delivered"] if outcomes["delivered"] else float(outcomes["complained"] > 0)
    )
    return outcomes["bounced"] / attempts, outcomes["deferred"] / attempts, complaint


@transaction.atomic
def step_warmup(ip, *, now=None):
    """Once per local calendar day: advance the IP one day if its last day stayed under the plan's thresholds,
    hold when one was exceeded (or nothing was sent), step back when one was exceeded at least
    WARMUP_SEVERE_FACTOR times. Past the plan's last day the IP becomes `active`. Returns the event or None."""
    ip = IPAddress.objects.select_for_update(of=("self",)).select_related("warmup_plan").get(pk=ip.pk)
    plan = ip.warmup_plan
    if ip.state != IPState.WARMING or plan is None:
        return None
    today = ip.local_date(now)
    if ip.warmup_last_step is None:  # put on a plan without start_warmup(): its first day is today
        IPAddress.objects.filter(pk=ip.pk).update(warmup_last_step=today)
        return None
    if ip.warmup_last_step >= today:
        return None
    last_day = today - timedelta(days=1)
    outcomes = day_outcomes(ip, last_day)
    rates = outcome_rates(outcomes)
    before = ip.warmup_day
    data = {"date": last_day.isoformat(), "outcomes": outcomes, "day_before": before}
    if rates is None:
        kind, message = IPEventKind.WARMUP_HOLD, f"Held at day {before}: no mail was sent on {last_day}."
    else:
        limits = (
            ("bounce rate", rates[0], plan.max_bounce_rate),
            ("deferral rate", rates[1], plan.max_deferral_rate),
            ("complaint rate", rates[2], plan.max_complaint_rate),
        )
        data["rates"] = {name: round(rate, 5) for name, rate, _ in limits}
        exceeded = [(name, rate, limit) for name, rate, limit in limits if rate > limit]
        why = ", ".join(f"{name} {rate:.2%} over {limit:.2%}" for name, rate, limit in exceeded)
        if not exceeded:
            kind = IPEventKind.WARMUP_ADVANCE
            ip.warmup_day = before + 1
            message = f"Advanced to day {ip.warmup_day}: {last_day} stayed under every threshold."
        elif any(rate >= limit * WARMUP_SEVERE_FACTOR for _, rate, limit in exceeded):
            kind = IPEventKind.WARMUP_STEP_BACK
            ip.warmup_day = max(1, before - plan.step_back_days)
            message = f"Stepped back to day {ip.warmup_day} after {last_day}: {why}."
        else:
            kind, message = IPEventKind.WARMUP_HOLD, f"Held at day {before} after {last_day}: {why}."
    if ip.warmup_day > plan.length:
        kind, ip.state, ip.warmup_day = IPEventKind.WARMUP_COMPLETE, IPState.ACTIVE, plan.length
        message = f"Warm-up complete after {plan.length} days: the IP is active without caps."
    ip.warmup_last_step = today
    ip.save()
    data["day_after"] = ip.warmup_day
    event = ip_event(ip, kind, message, data, now=now)
    day = ip.warmup_day
    transaction.on_commit(lambda: signals.warmup_stepped.send(IPAddress, ip=ip, kind=kind, day=day))
    return event


def step_warmups(now=None):
    """Step every warming IP whose local day has turned (the scheduler runs this every WARMUP_STEP_SECONDS)."""
    events = []
    for ip in IPAddress.objects.filter(state=IPState.WARMING, warmup_plan__isnull=False):
        try:
            event = step_warmup(ip, now=now)
        except Exception:  # one bad IP must not stop the others
            logger.exception("Warm-up step of IP %s failed", ip.pk)
            continue
        if event is not None:
            events.append(event)
    return events
