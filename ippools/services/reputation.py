"""Reputation: a 0-100 score per IP from its recent outcomes and listings."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from ..choices import IPState
from ..constants import (
    REPUTATION_BOUNCE_MAX_PENALTY,
    REPUTATION_BOUNCE_WEIGHT,
    REPUTATION_COMPLAINT_MAX_PENALTY,
    REPUTATION_COMPLAINT_WEIGHT,
    REPUTATION_DEFERRAL_MAX_PENALTY,
    REPUTATION_DEFERRAL_WEIGHT,
    REPUTATION_LISTING_MAX_PENALTY,
    REPUTATION_LISTING_PENALTY,
    REPUTATION_MAX,
    REPUTATION_MIN,
)
from ..models import BlocklistCheck, IPAddress, IPDailyUsage, ReputationSample
from .warmup import outcome_rates


def compute_reputation(ip, *, now=None):
    """(score 0-100, explanation, data) from the IP's outcomes over REPUTATION_WINDOW_DAYS and its listings."""
    now = now or timezone.now()
    since = ip.local_date(now) - timedelta(days=settings.REPUTATION_WINDOW_DAYS)
    totals = IPDailyUsage.objects.filter(ip=ip, date__gt=since).aggregate(
        delivered=Sum("delivered"), bounced=Sum("bounced"), deferred=Sum("deferred"), complained=Sum("complained")
    )
    totals = {key: value or 0 for key, value in totals.items()}
    rates = outcome_rates(totals)
    penalties = []
    if rates is not None:
        bounce, deferral, complaint = rates
        penalties += [
            ("bounce rate", bounce, min(REPUTATION_BOUNCE_MAX_PENALTY, bounce * REPUTATION_BOUNCE_WEIGHT)),
            ("deferral rate", deferral, min(REPUTATION_DEFERRAL_MAX_PENALTY, deferral * REPUTATION_DEFERRAL_WEIGHT)),
            (
                "complaint rate",
                complaint,
                min(REPUTATION_COMPLAINT_MAX_PENALTY, complaint * REPUTATION_COMPLAINT_WEIGHT),
            ),
        ]
    zones = BlocklistCheck.objects.listing_zones(ip)
    if zones:
        penalties.append(
            (
                "listed on " + ", ".join(zones),
                None,
                min(REPUTATION_LISTING_MAX_PENALTY, REPUTATION_LISTING_PENALTY * len(zones)),
            )
        )
    score = round(REPUTATION_MAX - sum(points for _, _, points in penalties))
    score = max(REPUTATION_MIN, min(REPUTATION_MAX, score))
    moved = sorted((p for p in penalties if round(p[2]) > 0), key=lambda p: -p[2])
    if moved:
        explanation = "; ".join(
            f"{name} {rate:.2%} (−{round(points)})" if rate is not None else f"{name} (−{round(points)})"
            for name, rate, points in moved
        )
    elif rates is None:
        explanation = f"No mail in the last {settings.REPUTATION_WINDOW_DAYS} days and no listings."
    else:
        explanation = "Clean: low bounce, deferral and complaint rates, no listings."
    data = {"outcomes": totals, "listed_on": zones}
    return score, explanation[:500], data


def update_reputation(ip, *, now=None):
    """Recompute and store an IP's score; a history sample is written when it changed."""
    score, explanation, data = compute_reputation(ip, now=now)
    if score != ip.reputation or explanation != ip.reputation_explanation or not ip.reputation_history.exists():
        IPAddress.objects.filter(pk=ip.pk).update(reputation=score, reputation_explanation=explanation)
        ReputationSample.objects.create(
            ip=ip, score=score, explanation=explanation, data=data, time=now or timezone.now()
        )
        ip.reputation, ip.reputation_explanation = score, explanation
    return score


def update_reputations(now=None):
    for ip in IPAddress.objects.exclude(state=IPState.RETIRED):
        update_reputation(ip, now=now)
