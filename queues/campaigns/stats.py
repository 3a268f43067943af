"""A campaign's figures: where its recipients stand (exact, from the Message rows), what they did (events), rates,
an ETA, and sends per minute (the counters the delivery worker keeps)."""

import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from ..choices import CampaignState, EventKind, MessageStatus
from ..models import CampaignMinute, Message, MessageEvent
from .fanout import UNRELEASED, campaign_content
from .pacing import rate_per_second

SPEED_WINDOW_MINUTES = 5  # recent minutes whose sends estimate the ETA of an unpaced campaign
CHART_MINUTES = 180  # minutes of sends the chart shows at most
ENGAGEMENT_KINDS = (EventKind.COMPLAINED, EventKind.UNSUBSCRIBED, EventKind.OPENED, EventKind.CLICKED)


def _ratio(part, whole):
    return round(part / whole, 4) if whole else 0.0


def campaign_stats(campaign, now=None):
    """The figures the API (`/campaigns/{id}/stats/`) and the report page show."""
    now = now or timezone.now()
    content = campaign_content(campaign)
    by_status, sent, waiting = {}, 0, 0
    engagement = {kind: 0 for kind in ENGAGEMENT_KINDS}
    proxy_opens = 0
    if content is not None:
        rows = (
            Message.objects.filter(content=content)
            .order_by()
            .values("status")
            .annotate(
                n=Count("id"),
                tried=Count("id", filter=Q(attempts__gt=0)),
                unreleased=Count("id", filter=Q(next_attempt_at=UNRELEASED)),
            )
        )
        for row in rows:
            by_status[row["status"]] = row["n"]
            sent += row["tried"]
            waiting += row["unreleased"]
        events = (
            MessageEvent.objects.filter(message__content=content, kind__in=ENGAGEMENT_KINDS)
            .order_by()
            .values("kind")
            .annotate(
                n=Count("message_id", distinct=True),
                proxy=Count("message_id", distinct=True, filter=Q(data__proxy=True)),
            )
        )
        for row in events:
            engagement[row["kind"]] = row["n"]
            if row["kind"] == EventKind.OPENED:
                proxy_opens = row["proxy"]
        human_opens = (
            MessageEvent.objects.filter(message__content=content, kind=EventKind.OPENED)
            .exclude(data__proxy=True)
            .values("message_id")
            .distinct()
            .count()
            if engagement[EventKind.OPENED]
            else 0
        )
    else:
        human_opens = 0
    delivered = by_status.get(MessageStatus.DELIVERED, 0)
    queued = by_status.get(MessageStatus.QUEUED, 0) + by_status.get(MessageStatus.SENDING, 0)
    stats = {
        "state": campaign.state,
        "recipients": campaign.recipients,
        "queued": queued,
        "waiting": waiting,  # of those queued: not released yet by pacing
        "sent": sent,
        "delivered": delivered,
        "deferred": by_status.get(MessageStatus.DEFERRED, 0),
        "bounced": by_status.get(MessageStatus.BOUNCED, 0),
        "expired": by_status.get(MessageStatus.EXPIRED, 0),
        "suppressed": by_status.get(MessageStatus.SUPPRESSED, 0),
        "cancelled": by_status.get(MessageStatus.CANCELLED, 0),
        "held": by_status.get(MessageStatus.HELD, 0),
        "complained": engagement[EventKind.COMPLAINED],
        "unsubscribed": engagement[EventKind.UNSUBSCRIBED],
        "opened": human_opens,
        "opened_by_proxy": proxy_opens,
        "clicked": engagement[EventKind.CLICKED],
    }
    stats["rates"] = {
        "delivery": _ratio(delivered, sent),
        "bounce": _ratio(stats["bounced"], sent),
        "complaint": _ratio(stats["complained"], delivered),
        "unsubscribe": _ratio(stats["unsubscribed"], delivered),
        "open": _ratio(human_opens, delivered),
        "click": _ratio(stats["clicked"], delivered),
    }
    stats["eta"] = eta(campaign, queued + stats["deferred"], now)
    return stats


def eta(campaign, remaining, now):
    """When the last message should have gone (ISO 8601), or None (nothing left, not sending, no speed yet)."""
    if campaign.state != CampaignState.SENDING or not remaining:
        return None
    rate = rate_per_second(campaign, now)
    if rate is None:
        since = now - datetime.timedelta(minutes=SPEED_WINDOW_MINUTES)
        recent = CampaignMinute.objects.filter(campaign=campaign, minute__gte=since).values_list("sent", flat=True)
        sent = sum(recent)
        if not sent:
            return None
        rate = sent / (SPEED_WINDOW_MINUTES * 60)
    if rate <= 0:
        return None
    return (now + datetime.timedelta(seconds=remaining / rate)).isoformat()


def sends_per_minute(campaign):
    """[(minute ISO, sent, delivered, deferred, bounced)] for the chart, oldest first, at most CHART_MINUTES."""
    rows = CampaignMinute.objects.filter(campaign=campaign).order_by("-minute")[:CHART_MINUTES]
    return [
        {
            "minute": row.minute.isoformat(),
            "sent": row.sent,
            "delivered": row.delivered,
            "deferred": row.deferred,
            "bounced": row.bounced,
        }
        for row in reversed(list(rows))
    ]


def count_attempts(attempts, now):
    """Add SMTP attempts of campaign messages to their campaigns' minute counters: the delivery worker calls this with
    the (content, outcome status) of each attempt it wrote. One upsert per campaign and minute; nothing at all for
    attempts without a campaign (transactional mail)."""
    counts = {}
    for content, status in attempts:
        if content.campaign_id is None or content.is_test:
            continue
        bucket = counts.setdefault(content.campaign_id, {"sent": 0, "delivered": 0, "deferred": 0, "bounced": 0})
        bucket["sent"] += 1
        if status in OUTCOME_COUNTERS:
            bucket[OUTCOME_COUNTERS[status]] += 1
    minute = now.replace(second=0, microsecond=0)
    for campaign_id, bucket in counts.items():
        changes = {name: F(name) + value for name, value in bucket.items()}
        if CampaignMinute.objects.filter(campaign_id=campaign_id, minute=minute).update(**changes):
            continue
        try:
            with transaction.atomic():
                CampaignMinute.objects.create(campaign_id=campaign_id, minute=minute, **bucket)
        except IntegrityError:  # another worker created this minute's row meanwhile
            CampaignMinute.objects.filter(campaign_id=campaign_id, minute=minute).update(**changes)
    return counts


OUTCOME_COUNTERS = {
    MessageStatus.DELIVERED: "delivered",
    MessageStatus.DEFERRED: "deferred",
    MessageStatus.EXPIRED: "deferred",
    MessageStatus.BOUNCED: "bounced",
}
