"""Warm-up: putting an IP on a plan and stepping it once per local day by the last day's outcomes."""

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from deliveryhub import audit

from .. import signals
from ..choices import IPEventKind, IPState
from ..constants import WARMUP_SEVERE_FACTOR
from ..models import IPAddress, IPDailyUsage
from .events import ip_event

logger = logging.getLogger(__name__)


@transaction.atomic
def start_warmup(ip, plan, *, day=1, acting_user=None, now=None):
    """Put an IP on a warm-up plan at `day` (state `warming`); its first day is today in its time zone."""
    with audit.acting_as(acting_user):
        if not 1 <= day <= plan.length:
            raise ValidationError({"day": f"The plan has days 1 to {plan.length}."})
        ip.warmup_plan, ip.warmup_day, ip.state = plan, day, IPState.WARMING
        ip.warmup_last_step = ip.local_date(now)
        ip.full_clean()
        ip.save()
        message = f"Warm-up started on plan {plan.name}, day {day} of {plan.length}."
        ip_event(ip, IPEventKind.WARMUP_START, message, {"plan": plan.pk, "day": day}, now=now)
        return ip


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
