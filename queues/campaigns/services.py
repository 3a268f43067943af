"""
Verbs on campaigns: create and edit (draft), start (through the deliverability gate), pause, resume, cancel,
"resend to the failed/deferred", test sends, and what recipients do from their mail (one-click unsubscribe,
opens, clicks). Every transition is audited (`campaign.<verb>`); every verb takes a keyword-only `acting_user`.

State changes are conditional UPDATEs (`… WHERE state = …`): two people pressing pause and cancel at once get
one winner and one 409, never a mixed state.
"""

import datetime
import ipaddress
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from deliveryhub import audit
from deliveryhub.crypto import personal_marker
from deliveryhub.exceptions import Conflict
from deliveryhub.jobs import get_queue

from ..choices import CampaignState, EventKind, MessagePriority, MessageStatus, SubscriptionStatus, SuppressionReason
from ..constants import (
    COMPLAINT_RATE_MAX,
    COMPLAINT_WINDOW,
    PRIVACY_PROXY_NETWORKS,
    PRIVACY_PROXY_USER_AGENTS,
    SUBJECT_MAX,
    TAG_MAX,
    TEST_SEND_MAX,
)
from ..mime import normalize_address, parse_mailbox
from ..models import Campaign, Contact, Message, MessageEvent, Subscription, Suppression
from ..services import sending_domain_for, suppress_addresses
from . import fanout, gate, rendering, tokens

logger = logging.getLogger(__name__)

CONTENT_FIELDS = ("subject", "from_header", "reply_to", "html", "text")
DRAFT_FIELDS = (
    "name",
    *CONTENT_FIELDS,
    "ip_pool",
    "send_at",
    "rate_per_hour",
    "finish_by",
    "track_opens",
    "track_clicks",
    "tag",
    "unsubscribe_suppresses",
    "lists",
)
PACING_FIELDS = ("rate_per_hour", "finish_by")  # also while paused
OPEN_STATUSES = (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING, MessageStatus.HELD)
SWEEP_CANCELLED_DAYS = 1  # cancelled campaigns the monitor still looks at for messages left waiting
_PROXY_NETWORKS = [ipaddress.ip_network(net) for net in PRIVACY_PROXY_NETWORKS]


class GateRefused(Conflict):
    """The deliverability gate refused the start: `problems` says what to fix."""

    default_code = "deliverability_gate"

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("This campaign cannot start until the From domain is fixed: " + " ".join(self.problems))


# ---------------------------------------------------------------------------------------------------------------------
# Drafts
# ---------------------------------------------------------------------------------------------------------------------


def _no_control(value, field, limit):
    value = value or ""
    if len(value) > limit:
        raise ValidationError({field: f"At most {limit} characters."})
    if any(ord(c) < 32 for c in value):
        raise ValidationError({field: "Line breaks and other control characters are not allowed here."})
    return value


def clean_fields(tenant, fields, instance=None):
    """Check campaign fields as a whole (API and UI share this); returns them cleaned, ValidationError otherwise."""
    data = dict(fields)
    merged = {name: getattr(instance, name) for name in DRAFT_FIELDS if name != "lists" and instance is not None}
    merged.update({k: v for k, v in data.items() if k != "lists"})
    if "name" in data:
        data["name"] = _no_control((data["name"] or "").strip(), "name", 200)
        if not data["name"]:
            raise ValidationError({"name": "A campaign needs a name."})
    if "subject" in data:
        data["subject"] = _no_control(data["subject"], "subject", SUBJECT_MAX)
        if not data["subject"].strip():
            raise ValidationError({"subject": "A campaign needs a subject."})
    if "from_header" in data:
        sender = parse_mailbox(data["from_header"], "from")
        data["sending_domain"] = sending_domain_for(tenant, sender.domain, "from")
        data["from_header"] = str(sender)
    if data.get("reply_to"):
        data["reply_to"] = str(parse_mailbox(data["reply_to"], "reply_to"))
    if "tag" in data:
        data["tag"] = _no_control(data["tag"], "tag", TAG_MAX)
    if any(name in data for name in ("subject", "html", "text")):
        if not (merged.get("html") or "").strip() and not (merged.get("text") or "").strip():
            raise ValidationError({"html": "Write the message: an HTML part, a text part, or both."})
        rendering.validate_templates(
            subject=merged.get("subject") or "", html=merged.get("html") or "", text=merged.get("text") or ""
        )
    send_at = merged.get("send_at")
    if "send_at" in data and send_at is not None:
        if timezone.is_naive(send_at):
            raise ValidationError({"send_at": "A send time needs a time zone."})
        limit = settings.DELIVERY_MAX_SCHEDULE_SECONDS
        if send_at > timezone.now() + datetime.timedelta(seconds=limit):
            raise ValidationError({"send_at": f"A campaign can be scheduled at most {limit / 86400:g} days ahead."})
    rate, finish_by = merged.get("rate_per_hour"), merged.get("finish_by")
    if rate is not None and finish_by is not None:
        raise ValidationError({"rate_per_hour": "Give either a rate per hour or a finish-by time, not both."})
    if rate is not None and rate < 1:
        raise ValidationError({"rate_per_hour": "At least one message per hour."})
    if finish_by is not None and ("finish_by" in data or "send_at" in data):
        if finish_by <= (send_at or timezone.now()):
            raise ValidationError({"finish_by": "The finish-by time must be after the send time."})
    return data


@transaction.atomic
def create_campaign(tenant, *, acting_user=None, **fields):
    """A new draft campaign (audited). Fields as `Campaign`'s; `lists` an iterable of the tenant's lists."""
    with audit.acting_as(acting_user):
        required = [name for name in ("name", "subject", "from_header") if not fields.get(name)]
        if required:
            raise ValidationError(
                {("from" if name == "from_header" else name): "This field is required." for name in required}
            )
        data = clean_fields(tenant, fields)
        lists = list(data.pop("lists", []))
        _check_lists(tenant, lists)
        campaign = Campaign(tenant=tenant, **data)
        campaign.save()
        campaign.lists.set(lists)
        return campaign


def _check_lists(tenant, lists):
    if any(contact_list.tenant_id != tenant.pk for contact_list in lists):
        raise ValidationError({"lists": "A list of another tenant cannot be used."})


@transaction.atomic
def update_campaign(campaign, *, acting_user=None, **fields):
    """Change a draft (any field) or a paused campaign (pacing only); audited. Otherwise a 409."""
    with audit.acting_as(acting_user):
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        allowed = DRAFT_FIELDS if campaign.state == CampaignState.DRAFT else ()
        if campaign.state in (CampaignState.PAUSED, CampaignState.SCHEDULED):
            allowed = PACING_FIELDS
        refused = [name for name in fields if name not in allowed]
        if refused:
            raise Conflict(
                f"A {campaign.get_state_display().lower()} campaign cannot change "
                f"{', '.join(refused)}: only drafts are edited (pacing also while paused)."
            )
        data = clean_fields(campaign.tenant, fields, instance=campaign)
        lists = data.pop("lists", None)
        for name, value in data.items():
            setattr(campaign, name, value)
        campaign.save()
        if lists is not None:
            _check_lists(campaign.tenant, lists)
            campaign.lists.set(lists)
        return campaign


@transaction.atomic
def delete_campaign(campaign, *, acting_user=None):
    """Delete a draft that never sent anything (test sends included); anything else is kept for the record."""
    with audit.acting_as(acting_user):
        if campaign.state != CampaignState.DRAFT or campaign.contents.exists():
            raise Conflict("Only a draft that has sent nothing (not even a test) can be deleted; cancel it instead.")
        campaign.delete()


# ---------------------------------------------------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------------------------------------------------


def _transition(campaign, from_states, to_state, verb, **changes):
    """Move `campaign` from one of `from_states` to `to_state` (a conditional UPDATE), audit it, return it fresh."""
    now = timezone.now()
    moved = Campaign.objects.filter(pk=campaign.pk, state__in=from_states).update(state=to_state, **changes)
    campaign.refresh_from_db()
    if not moved:
        raise Conflict(f"The campaign is {campaign.get_state_display().lower()}: it cannot be {verb} now.")
    audit.record(
        f"campaign.{verb.replace(' ', '_')}",
        obj=campaign,
        prechange={"state": list(from_states)},
        postchange={"state": to_state, **{k: str(v) for k, v in changes.items()}},
        message=f"at {now}",
    )
    return campaign


def start_campaign(campaign, *, acting_user=None):
    """Start a draft: the gate checks the From domain (refusing with what to fix, see gate.py), then the campaign is
    scheduled and its fan-out runs at its send time (now, or `send_at`). Returns the campaign with `gate_report`."""
    with audit.acting_as(acting_user):
        campaign = Campaign.objects.select_related("sending_domain").get(pk=campaign.pk)
        if campaign.state != CampaignState.DRAFT:
            raise Conflict(f"The campaign is {campaign.get_state_display().lower()}: only a draft can start.")
        if not campaign.lists.exists():
            raise ValidationError({"lists": "Choose the lists this campaign goes to."})
        allowed, reason = campaign.sending_domain.can_send()
        if not allowed:
            raise ValidationError({"from": reason})
        verdict = gate.check(campaign)
        Campaign.objects.filter(pk=campaign.pk).update(gate_report=verdict.as_dict())
        if not verdict.recipients:
            raise ValidationError({"lists": "These lists have no subscribed contacts that may be sent to."})
        if verdict.refuses:
            audit.record("campaign.start_refused", obj=campaign, postchange=verdict.as_dict())
            raise GateRefused(verdict.problems)
        with transaction.atomic():
            now = timezone.now()
            send_at = max(campaign.send_at or now, now)
            campaign = _transition(
                campaign, [CampaignState.DRAFT], CampaignState.SCHEDULED, "start", send_at=send_at, state_detail=""
            )
            if send_at <= now:
                campaign_id = campaign.pk
                transaction.on_commit(lambda: get_queue("default").enqueue(fanout.fan_out, campaign_id))
        return campaign


@transaction.atomic
def pause_campaign(campaign, *, acting_user=None, reason=""):
    """Stop handing out a sending campaign's messages (batches already handed out finish)."""
    with audit.acting_as(acting_user):
        return _transition(
            campaign,
            [CampaignState.SENDING],
            CampaignState.PAUSED,
            "pause",
            paused_at=timezone.now(),
            state_detail=reason[:500],
        )


@transaction.atomic
def resume_campaign(campaign, *, acting_user=None):
    """Go on sending a paused campaign (pacing restarts from now: nothing is caught up in a burst)."""
    with audit.acting_as(acting_user):
        return _transition(
            campaign,
            [CampaignState.PAUSED],
            CampaignState.SENDING,
            "resume",
            paused_at=None,
            state_detail="",
            pace_checked=timezone.now(),
            pace_tokens=0.0,
        )


@transaction.atomic
def cancel_campaign(campaign, *, acting_user=None):
    """Cancel a scheduled, sending or paused campaign: nothing more is handed out from now, and every message not yet
    sent becomes `cancelled` (a background job, for a million rows; the campaign monitor finishes it if need be)."""
    with audit.acting_as(acting_user):
        from_states = [CampaignState.SCHEDULED, CampaignState.SENDING, CampaignState.PAUSED]
        campaign = _transition(campaign, from_states, CampaignState.CANCELLED, "cancel", finished_at=timezone.now())
        campaign_id = campaign.pk
        transaction.on_commit(lambda: get_queue("default").enqueue(cancel_remaining_job, campaign_id))
        return campaign


def cancel_remaining_job(campaign_id):
    """RQ job: cancel what a cancelled campaign has not sent."""
    campaign = Campaign.objects.filter(pk=campaign_id, state=CampaignState.CANCELLED).first()
    return fanout.cancel_remaining(campaign) if campaign is not None else 0


@transaction.atomic
def resend_campaign(campaign, *, acting_user=None):
    """ "Resend to the failed/deferred": a new draft with the same content and lists whose recipients are the contacts
    whose messages of `campaign` are deferred, bounced, expired or held (still subscribed, not suppressed). When it
    starts, those of the parent's messages still waiting to retry are cancelled: nobody gets both."""
    with audit.acting_as(acting_user):
        if (
            campaign.state
            not in (CampaignState.SENDING, CampaignState.PAUSED, CampaignState.SENT, CampaignState.CANCELLED)
            or fanout.campaign_content(campaign) is None
        ):
            raise Conflict("Only a campaign that has sent can be resent to its failed and deferred recipients.")
        follow_up = Campaign(
            tenant_id=campaign.tenant_id,
            name=f"{campaign.name} (resend)"[:200],
            parent=campaign,
            resend_statuses=list(fanout.RESEND_STATUSES),
            **{
                name: getattr(campaign, name)
                for name in (
                    *CONTENT_FIELDS,
                    "sending_domain",
                    "ip_pool",
                    "rate_per_hour",
                    "track_opens",
                    "track_clicks",
                    "tag",
                    "unsubscribe_suppresses",
                )
            },
        )
        follow_up.save()
        follow_up.lists.set(campaign.lists.all())
        audit.record("campaign.resend", obj=campaign, postchange={"follow_up": str(follow_up.uuid)})
        return follow_up


# ---------------------------------------------------------------------------------------------------------------------
# Test sends and previews
# ---------------------------------------------------------------------------------------------------------------------


@transaction.atomic
def test_send(campaign, addresses, *, contact=None, acting_user=None):
    """Send the campaign to up to TEST_SEND_MAX addresses through the normal pipeline, subject marked as a test,
    rendered with `contact`'s data (or an empty contact). Never counted in the campaign's figures."""
    with audit.acting_as(acting_user):
        if not addresses:
            raise ValidationError({"to": "Give at least one address."})
        if len(addresses) > TEST_SEND_MAX:
            raise ValidationError({"to": f"A test goes to at most {TEST_SEND_MAX} addresses."})
        recipients = list(dict.fromkeys(normalize_address(a, "to") for a in addresses))
        campaign = Campaign.objects.select_related("sending_domain").get(pk=campaign.pk)
        allowed, reason = campaign.sending_domain.can_send()
        if not allowed:
            raise ValidationError({"from": reason})
        if contact is not None and contact.tenant_id != campaign.tenant_id:
            raise ValidationError({"contact": "That contact belongs to another tenant."})
        content = fanout.new_content(campaign, is_test=True)
        now = timezone.now()
        domain = campaign.sending_domain
        rows = []
        for rcpt in recipients:
            message = Message(
                tenant_id=campaign.tenant_id,
                content=content,
                sending_domain=domain,
                ip_pool=campaign.ip_pool,
                rcpt_to=rcpt,
                rcpt_domain=rcpt.rpartition("@")[2].lower(),
                priority=MessagePriority.TRANSACTIONAL,
                tag="test",
                contact=contact,
                next_attempt_at=now,
                created=now,
                metadata={"test": True},
            )
            message.mail_from = Message.verp_address(message.uuid, domain.return_path_host)
            rows.append(message)
        Message.objects.bulk_create(rows)
        MessageEvent.objects.bulk_create(
            [MessageEvent(message=m, time=now, kind=EventKind.ACCEPTED, detail="Campaign test send") for m in rows]
        )
        audit.record(
            "campaign.test_send",
            obj=campaign,
            postchange={"to": personal_marker(recipients), "contact": contact.pk if contact else None},
        )
        return rows


def preview(campaign, contact=None):
    """(subject, html, text) as `contact` (a Contact, or None: a sample) would get them."""
    data = contact.template_context() if contact is not None else dict(rendering.SAMPLE_CONTACT)
    return rendering.preview(campaign, data)


# ---------------------------------------------------------------------------------------------------------------------
# What recipients do: one-click unsubscribe, opens, clicks
# ---------------------------------------------------------------------------------------------------------------------


def campaign_message(message_uuid):
    """The campaign message a token names (with its content, campaign and contact), or None."""
    return (
        Message.objects.select_related("content__campaign", "contact")
        .defer("content__raw")
        .filter(uuid=message_uuid, content__campaign__isnull=False)
        .first()
    )


@transaction.atomic
def unsubscribe(message, *, via="https"):
    """One-click unsubscribe (RFC 8058) of a campaign message's recipient: unsubscribed from the campaign's lists,
    and suppressed for the tenant when the campaign says so. Idempotent: a second request changes nothing.
    Returns True when something changed. A test send's unsubscribe changes nothing."""
    campaign, contact = message.content.campaign, message.contact
    if message.content.is_test or contact is None:
        return False
    with audit.audit_context(principal=None, tenant_id=message.tenant_id):
        now = timezone.now()
        changed = Subscription.objects.filter(
            contact=contact, contact_list__in=campaign.lists.all(), status=SubscriptionStatus.SUBSCRIBED
        ).update(status=SubscriptionStatus.UNSUBSCRIBED, updated=now)
        if (
            campaign.unsubscribe_suppresses
            and not Suppression.objects.filter(tenant_id=message.tenant_id, address=contact.email).exists()
        ):
            suppress_addresses(
                message.tenant_id,
                [
                    (
                        contact.email,
                        SuppressionReason.UNSUBSCRIBE,
                        f"One-click unsubscribe from campaign {campaign.name}",
                    )
                ],
            )
            Suppression.objects.filter(tenant_id=message.tenant_id, address=contact.email).update(
                message=message, campaign=campaign
            )
            changed += 1
        if not MessageEvent.objects.filter(message=message, kind=EventKind.UNSUBSCRIBED).exists():
            MessageEvent.objects.create(
                message=message,
                time=now,
                kind=EventKind.UNSUBSCRIBED,
                detail=f"One-click unsubscribe ({via}).",
                data={"via": via},
            )
        if changed:
            audit.record(
                "contact.unsubscribe",
                obj=contact,
                message=f"One-click unsubscribe ({via}) from campaign {campaign.name} ({campaign.uuid})",
                postchange={"lists": changed},
            )
        return bool(changed)


def message_for_unsubscribe_address(address):
    """The campaign message a mailto: unsubscribe address (`u-<token>@<return-path host>`) names, or None."""
    token = tokens.token_from_unsubscribe_address(address)
    message_uuid = tokens.message_uuid_from_token(token) if token else None
    return campaign_message(message_uuid) if message_uuid is not None else None


def unsubscribe_by_mail(address):
    """Mail to a List-Unsubscribe mailto: address (the inbound SMTP listener): the same as the one-click POST."""
    message = message_for_unsubscribe_address(address)
    if message is not None:
        unsubscribe(message, via="mailto")
    return message


def is_privacy_proxy(client_ip, user_agent):
    """Whether an open was fetched by a mail privacy proxy (Apple Mail Privacy Protection), not by a person."""
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        address = None
    if address is not None and any(address in network for network in _PROXY_NETWORKS):
        return True
    return any(marker in (user_agent or "") for marker in PRIVACY_PROXY_USER_AGENTS)


def record_open(message, *, client_ip, user_agent):
    """An open of a tracked campaign message (the pixel was fetched): an `opened` event, proxy opens marked."""
    if message.content.is_test or not message.content.campaign.track_opens:
        return None
    proxy = is_privacy_proxy(client_ip, user_agent)
    return MessageEvent.objects.create(
        message=message,
        kind=EventKind.OPENED,
        detail="Opened by a privacy proxy." if proxy else "Opened.",
        data={"proxy": proxy, "user_agent": (user_agent or "")[:200]},
    )


def record_click(message, url, *, client_ip, user_agent):
    """A click on a tracked link of a campaign message: a `clicked` event with the target."""
    if message.content.is_test or not message.content.campaign.track_clicks:
        return None
    return MessageEvent.objects.create(
        message=message,
        kind=EventKind.CLICKED,
        detail=url[:500],
        data={"url": url[:2000], "user_agent": (user_agent or "")[:200]},
    )


# ---------------------------------------------------------------------------------------------------------------------
# The campaign monitor (a periodic job, see jobs.py)
# ---------------------------------------------------------------------------------------------------------------------


def start_due(now=None):
    """Fan out scheduled campaigns whose send time has come; returns how many started."""
    now = now or timezone.now()
    started = 0
    for campaign_id in Campaign.objects.filter(state=CampaignState.SCHEDULED, send_at__lte=now).values_list(
        "id", flat=True
    ):
        try:
            started += bool(fanout.fan_out(campaign_id))
        except Exception:
            logger.exception("Fan-out of campaign %s failed", campaign_id)
    return started


def finish_sent(now=None):
    """Sending campaigns with no message left to send become `sent`; returns how many."""
    now = now or timezone.now()
    finished = 0
    for campaign in Campaign.objects.filter(state=CampaignState.SENDING):
        content = fanout.campaign_content(campaign)
        if content is None:
            continue
        if Message.objects.filter(content=content, status__in=OPEN_STATUSES).exists():
            continue
        with transaction.atomic(), audit.audit_context(principal=None, tenant_id=campaign.tenant_id):
            try:
                _transition(campaign, [CampaignState.SENDING], CampaignState.SENT, "finish", finished_at=now)
                finished += 1
            except Conflict:
                pass  # paused or cancelled meanwhile
    return finished


def complaint_rate(campaign):
    """(complaints, deliveries considered) over the campaign's last COMPLAINT_WINDOW deliveries."""
    content = fanout.campaign_content(campaign)
    if content is None:
        return 0, 0
    recent = list(
        Message.objects.filter(content=content, status=MessageStatus.DELIVERED)
        .order_by("-delivered_at")
        .values_list("id", flat=True)[:COMPLAINT_WINDOW]
    )
    complaints = (
        MessageEvent.objects.filter(message_id__in=recent, kind=EventKind.COMPLAINED)
        .values("message_id")
        .distinct()
        .count()
    )
    return complaints, len(recent)


def pause_on_complaints():
    """Pause sending campaigns whose complaint rate over their last deliveries is above COMPLAINT_RATE_MAX."""
    paused = 0
    for campaign in Campaign.objects.filter(state=CampaignState.SENDING):
        complaints, window = complaint_rate(campaign)
        if not window or complaints / max(window, COMPLAINT_WINDOW) <= COMPLAINT_RATE_MAX:
            continue
        reason = (
            f"Paused automatically: {complaints} complaints over the last {window} deliveries "
            f"({100 * complaints / max(window, COMPLAINT_WINDOW):.1f}%, the limit is "
            f"{100 * COMPLAINT_RATE_MAX:.1f}%). Check the list's consent before resuming."
        )
        with audit.audit_context(principal=None, tenant_id=campaign.tenant_id):
            try:
                pause_campaign(campaign, reason=reason)
                audit.record("campaign.auto_pause", obj=campaign, message=reason)
                paused += 1
            except Conflict:
                pass
    return paused


def sweep_cancelled():
    """Cancelled campaigns with messages still waiting (a lost job, a worker that died): cancel them now."""
    count = 0
    recent = timezone.now() - datetime.timedelta(days=SWEEP_CANCELLED_DAYS)
    for campaign in Campaign.objects.filter(state=CampaignState.CANCELLED, finished_at__gte=recent):
        if Message.objects.filter(
            content__campaign=campaign,
            content__is_test=False,
            status__in=(MessageStatus.QUEUED, MessageStatus.DEFERRED),
        ).exists():
            count += fanout.cancel_remaining(campaign)
    return count


def contact_for(campaign, pk):
    """A contact of the campaign's tenant by id (for previews and tests), or None."""
    return Contact.objects.filter(tenant_id=campaign.tenant_id, pk=pk).first()
