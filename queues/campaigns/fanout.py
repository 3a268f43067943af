"""
Fan-out: a started campaign's recipients become `Message` rows, in one set-based statement.

Recipients are the contacts subscribed to any of the campaign's lists (each once), minus the tenant's suppressed
addresses; a "resend" campaign takes the contacts whose messages of the parent campaign ended in the states it
names (and who are still subscribed and not suppressed). `recipient_contacts()` is that one definition, used by
the deliverability gate, the fan-out and the campaign pages alike.

The rows are written by `INSERT … SELECT` inside the database (no row passes through Python: a million recipients
take seconds), sharing one `MessageContent` (no body is stored: the worker renders each message), at marketing
priority, all unreleased (`next_attempt_at` = UNRELEASED): the scheduler's pacing step lets them go, at the
campaign's rate or, unpaced, RELEASE_CHUNK at a time, so that pause, cancel and pacing act on one path. They get
no `accepted` event each (a million rows that would only repeat their `created` time): the
campaign's `campaign.fanout` audit entry records their intake, and their events start with their first attempt.
"""

import datetime
import logging

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from deliveryhub import audit

from ..choices import CampaignState, EventKind, MessagePriority, MessageStatus, SubscriptionStatus
from ..constants import VERP_LOCAL_PREFIX, VERP_SEPARATOR
from ..models import Campaign, Contact, Message, MessageContent, MessageEvent, Subscription, Suppression

logger = logging.getLogger(__name__)

# next_attempt_at of a paced campaign's messages until pacing releases them: never "due" for the scheduler.
UNRELEASED = datetime.datetime(2999, 1, 1, tzinfo=datetime.UTC)
WAITING_DETAIL = "Waiting for its turn: the campaign's pacing releases it to the scheduler."
CANCEL_CHUNK = 10000  # messages cancelled per UPDATE
FANOUT_RETRY_SECONDS = 600  # a fan-out claimed this long ago without finishing (its worker died) is tried again
# Statuses "resend to the failed/deferred" takes from the parent campaign.
RESEND_STATUSES = (MessageStatus.DEFERRED, MessageStatus.BOUNCED, MessageStatus.EXPIRED, MessageStatus.HELD)


def recipient_contacts(campaign):
    """The contacts a campaign sends to (see the module docstring), as a queryset of `Contact`."""
    subscribed = Subscription.objects.filter(
        contact_id=OuterRef("pk"), contact_list__in=campaign.lists.all(), status=SubscriptionStatus.SUBSCRIBED
    )
    suppressed = Suppression.objects.filter(tenant_id=campaign.tenant_id, address=OuterRef("email"))
    contacts = (
        Contact.objects.filter(tenant_id=campaign.tenant_id).filter(Exists(subscribed)).exclude(Exists(suppressed))
    )
    if campaign.parent_id is not None:
        parent_messages = Message.objects.filter(
            content__campaign_id=campaign.parent_id, content__is_test=False, status__in=campaign.resend_statuses
        )
        contacts = contacts.filter(pk__in=parent_messages.values("contact_id"))
    return contacts


def campaign_content(campaign):
    """The content row all of a campaign's (non-test) messages share, or None before fan-out."""
    return MessageContent.objects.filter(campaign=campaign, is_test=False).first()


def new_content(campaign, *, is_test):
    return MessageContent.objects.create(
        tenant_id=campaign.tenant_id,
        campaign=campaign,
        is_test=is_test,
        raw=b"",
        size=0,
        subject=campaign.subject[:255],
        from_header=campaign.from_header[:320],
    )


def _recipients_cte(select_sql):
    """`WITH r AS (…)`: the recipients query with a time-ordered UUID (RFC 9562 version 7, as 32 hex digits, column
    `h`) per row: the fan-out's milliseconds (parameter `ts`), then the row's number as a counter, then random bits.
    Ordered ids go to the end of the uuid index instead of all over it (a fifth of the insert time on PostgreSQL).
    Materialised, so that each row's random bits are drawn once."""
    if connection.vendor == "postgresql":
        hex_ = "lpad(to_hex({}), {}, '0')"
        random_bits = "substr(md5(random()::text), 1, 11)"
    else:
        hex_ = "printf('%%0{1}x', {0})"
        random_bits = "substr(lower(hex(randomblob(6))), 1, 11)"
    uuid_hex = " || ".join(
        [
            hex_.format("%s", 12),
            "'7'",
            hex_.format("(r0.rn >> 18) & 4095", 3),
            hex_.format("8 | ((r0.rn >> 16) & 3)", 1),
            hex_.format("r0.rn & 65535", 4),
            random_bits,
        ]
    )
    return (
        f"WITH r0 AS MATERIALIZED (SELECT row_number() OVER () AS rn, q.* FROM ({select_sql}) q), "
        f"r AS MATERIALIZED (SELECT {uuid_hex} AS h, r0.* FROM r0) "
    )


def write_messages(campaign, content, contacts, *, next_attempt_at, send_at, status_detail=""):
    """INSERT one queued Message per contact of `contacts` (a queryset); returns the count.

    Every column of `Message` is written: those below from the recipient and the campaign, any other with its
    field's default (so a column added to messages later needs nothing here)."""
    domain = campaign.sending_domain
    postgres = connection.vendor == "postgresql"
    select_sql, select_params = contacts.values_list("id", "email", "domain").query.sql_with_params()
    now = timezone.now()
    verp = f"'{VERP_LOCAL_PREFIX}{VERP_SEPARATOR}' || r.h || %s"
    values = {  # column -> (SQL expression, its parameters)
        "uuid": ("CAST(r.h AS uuid)" if postgres else "r.h", []),
        "mail_from": (verp, [f"@{domain.return_path_host}"]),
        "rcpt_to": ("r.email", []),
        "rcpt_domain": ("r.domain", []),
        "contact_id": ("r.id", []),
        "tenant_id": ("%s", [campaign.tenant_id]),
        "content_id": ("%s", [content.pk]),
        "sending_domain_id": ("%s", [domain.pk]),
        "ip_pool_id": ("%s", [campaign.ip_pool_id]),
        "priority": ("%s", [MessagePriority.MARKETING]),
        "status": ("%s", [MessageStatus.QUEUED]),
        "status_detail": ("%s", [status_detail]),
        "next_attempt_at": ("%s", [next_attempt_at]),
        "send_at": ("%s", [send_at]),
        "tag": ("%s", [campaign.tag]),
        "created": ("%s", [now]),
        "updated": ("%s", [now]),
    }
    for field in Message._meta.concrete_fields:
        if field.primary_key or field.column in values:
            continue
        placeholder = "%s::jsonb" if postgres and field.get_internal_type() == "JSONField" else "%s"
        values[field.column] = (placeholder, [field.get_db_prep_save(field.get_default(), connection)])
    columns = list(values)
    params = [*select_params, int(now.timestamp() * 1000)]
    for column in columns:
        params += values[column][1]
    quote = connection.ops.quote_name
    sql = (
        _recipients_cte(select_sql)
        + f"INSERT INTO {quote(Message._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        + f"SELECT {', '.join(values[c][0] for c in columns)} FROM r"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _adapt(params))
        # (SQLite's driver gives no rowcount for a statement starting with WITH.)
        cursor.execute(f"SELECT count(*) FROM {quote(Message._meta.db_table)} WHERE content_id = %s", [content.pk])
        count = cursor.fetchone()[0]
    return count


def _adapt(params):
    """Datetimes as the backend stores them (the raw cursor does not know the column types)."""
    return [connection.ops.adapt_datetimefield_value(p) if isinstance(p, datetime.datetime) else p for p in params]


def claim(campaign_id, now=None):
    """Take the fan-out of a due scheduled campaign (a conditional UPDATE: one taker). True when taken."""
    now = now or timezone.now()
    stale = now - datetime.timedelta(seconds=FANOUT_RETRY_SECONDS)
    due = Campaign.objects.filter(pk=campaign_id, state=CampaignState.SCHEDULED, send_at__lte=now)
    claimed = due.filter(fanout_started__isnull=True).update(fanout_started=now)
    if not claimed:
        claimed = due.filter(fanout_started__lt=stale).update(fanout_started=now)
    return bool(claimed)


def fan_out(campaign_id):
    """RQ job: write a due campaign's messages and make it `sending` (see the module docstring). Idempotent."""
    if not claim(campaign_id):
        return 0
    campaign = Campaign.objects.select_related("sending_domain").get(pk=campaign_id)
    now = timezone.now()
    with transaction.atomic():
        if campaign_content(campaign) is not None:  # an earlier run got this far and committed
            return 0
        content = new_content(campaign, is_test=False)
        count = write_messages(campaign, content, recipient_contacts(campaign), next_attempt_at=UNRELEASED,
                               send_at=None, status_detail=WAITING_DETAIL)
        if campaign.parent_id is not None:
            _supersede(campaign, content)
        moved = Campaign.objects.filter(pk=campaign.pk, state=CampaignState.SCHEDULED).update(
            state=CampaignState.SENDING,
            started_at=now,
            recipients=count,
            pace_checked=now,
            pace_tokens=0.0,
            released=0,
        )
        campaign.refresh_from_db()
        with audit.audit_context(principal=None, tenant_id=campaign.tenant_id):
            audit.record("campaign.fanout", obj=campaign, postchange={"recipients": count, "state": campaign.state})
    logger.info("Campaign %s: %d message(s) queued", campaign.uuid, count)
    if not moved and campaign.state == CampaignState.CANCELLED:  # cancelled while the fan-out ran
        cancel_remaining(campaign)
    return count


def _supersede(campaign, content):
    """A resend takes over the parent's messages still waiting to retry: they are cancelled, never sent twice."""
    waiting = Message.objects.filter(
        content__campaign_id=campaign.parent_id,
        content__is_test=False,
        lease_owner__isnull=True,
        status__in=(MessageStatus.DEFERRED, MessageStatus.HELD, MessageStatus.QUEUED),
        contact_id__in=Message.objects.filter(content=content).values("contact_id"),
    )
    ids = list(waiting.values_list("id", flat=True))
    now = timezone.now()
    detail = f"Superseded by the follow-up campaign {campaign.name}."[:500]
    Message.objects.filter(id__in=ids, lease_owner__isnull=True).update(
        status=MessageStatus.CANCELLED, status_detail=detail, updated=now
    )
    MessageEvent.objects.bulk_create(
        [MessageEvent(message_id=i, time=now, kind=EventKind.CANCELLED, detail=detail) for i in ids], batch_size=2000
    )


def cancel_remaining(campaign):
    """Mark every message of `campaign` not being sent as `cancelled` (with its event), in chunks; returns the count.

    Rows handed to a batch but not claimed yet are cancelled too (the worker's claim then skips them); rows a worker
    is sending finish, and a row whose worker died comes back queued and is cancelled by the next sweep."""
    now = timezone.now()
    waiting = (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.HELD)
    base = Message.objects.filter(content__campaign=campaign, content__is_test=False, status__in=waiting)
    total = 0
    while True:
        ids = list(base.order_by().values_list("id", flat=True)[:CANCEL_CHUNK])
        if not ids:
            return total
        with transaction.atomic():
            count = Message.objects.filter(id__in=ids, status__in=waiting).update(
                status=MessageStatus.CANCELLED,
                status_detail="The campaign was cancelled.",
                updated=now,
                lease_owner=None,
                lease_expires=None,
            )
            MessageEvent.objects.bulk_create(
                [
                    MessageEvent(message_id=i, time=now, kind=EventKind.CANCELLED, detail="Campaign cancelled.")
                    for i in ids
                ],
                batch_size=2000,
            )
        total += count
