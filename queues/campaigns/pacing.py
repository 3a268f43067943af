"""
Pacing and halting: what the delivery scheduler asks about campaigns on every run.

- `halted_contents()`: the content ids of paused and cancelled campaigns. The scheduler's ready scan leaves their
  messages alone, so a pause or cancel takes effect at the next scheduler run (batches already handed out finish).
- `release(now)`: a campaign's messages wait unreleased (see fanout.UNRELEASED); each run releases the next
  RELEASE_CHUNK of an unpaced campaign, and of a paced one as many as its token bucket holds. The bucket fills at
  the campaign's rate (`rate_per_hour`, or what is left divided by the time left until `finish_by`, worked out
  again every run so the send ends on time) and holds at most PACING_BURST_SECONDS of it: a campaign that fell
  behind (warm-up caps, throttles, a pause) never catches up in a burst. Released rows are due at once, so the
  rate the receivers see is the release rate.
"""

import logging
import math

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..choices import CAMPAIGN_HALTED_STATES, CampaignState, MessagePriority, MessageStatus
from ..constants import PACING_BURST_SECONDS
from ..models import Campaign, Message, MessageContent
from .fanout import UNRELEASED

logger = logging.getLogger(__name__)

RELEASE_CHUNK = 20000  # messages of an unpaced campaign released per scheduler run (one UPDATE)


def halted_contents():
    """Ids of the contents whose messages must not be scheduled now (their campaign is paused or cancelled)."""
    return list(
        MessageContent.objects.filter(campaign__state__in=CAMPAIGN_HALTED_STATES, is_test=False).values_list(
            "id", flat=True
        )
    )


def rate_per_second(campaign, now):
    """The campaign's send rate now, in messages per second (None when it is not paced)."""
    if campaign.rate_per_hour:
        return campaign.rate_per_hour / 3600.0
    if campaign.finish_by:
        remaining = max(campaign.recipients - campaign.released, 0)
        seconds = (campaign.finish_by - now).total_seconds()
        return remaining / seconds if seconds > 1 else float(remaining)  # past the deadline: the rest at once
    return None


def release(now=None):
    """Release the next messages of every sending, paced campaign; returns how many were released."""
    now = now or timezone.now()
    total = 0
    candidates = Campaign.objects.filter(state=CampaignState.SENDING, released__lt=F("recipients"))
    for campaign_id in candidates.values_list("id", flat=True):
        try:
            total += _release_one(campaign_id, now)
        except Exception:  # one campaign's trouble never stops the others, nor the scheduler
            logger.exception("Pacing campaign %s failed", campaign_id)
    return total


@transaction.atomic
def _release_one(campaign_id, now):
    campaign = Campaign.objects.select_for_update().filter(pk=campaign_id, state=CampaignState.SENDING).first()
    if campaign is None:
        return 0
    rate = rate_per_second(campaign, now)
    if rate is None:  # not paced: as fast as the scheduler and the IPs' limits take them
        tokens = wanted = RELEASE_CHUNK
    else:
        last = campaign.pace_checked or campaign.started_at or now
        elapsed = max((now - last).total_seconds(), 0.0)
        capacity = max(rate * PACING_BURST_SECONDS, 1.0)
        tokens = min(campaign.pace_tokens + rate * elapsed, capacity)
        wanted = math.floor(tokens)
    released = 0
    if wanted > 0:
        content_id = MessageContent.objects.filter(campaign=campaign, is_test=False).values_list("id", flat=True)[0]
        # The ready index (status, priority, next_attempt_at) leads straight to the unreleased rows.
        waiting = Message.objects.filter(
            status=MessageStatus.QUEUED,
            priority=MessagePriority.MARKETING,
            next_attempt_at=UNRELEASED,
            content_id=content_id,
        )
        ids = list(waiting.order_by().values_list("id", flat=True)[:wanted])
        released = Message.objects.filter(id__in=ids, next_attempt_at=UNRELEASED).update(
            next_attempt_at=now, send_at=now, status_detail="", updated=now
        )
    Campaign.objects.filter(pk=campaign.pk).update(
        pace_tokens=0.0 if rate is None else tokens - released, pace_checked=now, released=campaign.released + released
    )
    return released
