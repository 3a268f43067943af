"""
Verbs of the queues app: accepting messages (API and SMTP submission share one path), suppressions,
routes, SMTP credentials, cancelling and releasing messages, recording bounce reports and complaints.

Every verb is atomic and keyword-only about its actor. `accept_messages` stores everything or nothing:
content, one `Message` row per envelope recipient (bulk-created), their first events, and the
idempotency record, in one transaction; the caller answers only after it committed.
"""

import datetime
import hashlib
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveryhub import audit
from deliveryhub.exceptions import Conflict
from deliveryhub.querysets import rows_where
from domains.models import SendingDomain, normalise_domain_name
from ippools.models import IPPool

from . import bulk
from .choices import EventKind, MessagePriority, MessageStatus, SuppressionReason
from .constants import CAPACITY_WAIT_PREFIX, ENVELOPE_ADDRESS_MAX, IDEMPOTENCY_KEY_MAX, METADATA_MAX_BYTES, TAG_MAX
from .mime import Content, build_message, normalize_address, normalize_raw, parse_mailbox, parse_mailboxes
from .models import IdempotencyKey, Message, MessageContent, MessageEvent, SmtpCredential, Suppression

logger = logging.getLogger(__name__)

SUPPRESSION_LOOKUP_CHUNK = 500  # addresses per suppression-list query (SQLite takes 999 parameters)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and unpaired surrogates: no database column takes them


# ---------------------------------------------------------------------------------------------------------------------
# Intake
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Submission:
    """What a client asked to send, before validation: either structured fields or raw MIME + envelope."""

    sender: str = ""  # the From mailbox ("Name <a@b>") of a structured message
    to: list = field(default_factory=list)
    cc: list = field(default_factory=list)
    bcc: list = field(default_factory=list)
    reply_to: list = field(default_factory=list)
    subject: str = ""
    text: str = ""
    html: str = ""
    headers: dict = field(default_factory=dict)
    attachments: list = field(default_factory=list)
    raw: bytes | None = None  # raw RFC 5322 message: then `envelope_to` names the recipients
    envelope_to: list = field(default_factory=list)
    tag: str = ""
    metadata: dict = field(default_factory=dict)
    ip_pool: str | None = None  # pool name
    send_at: object = None  # aware datetime or None
    priority: int = MessagePriority.TRANSACTIONAL


@dataclass
class Accepted:
    """The outcome of `accept_messages`: the message rows (one per recipient) and the JSON answer."""

    messages: list
    response: dict
    status_code: int = 202
    replayed: bool = False  # the answer comes from an earlier request with the same Idempotency-Key


class Prepared(NamedTuple):
    """A validated submission, ready to store: its content, sending domain, distinct recipients and pool."""

    submission: Submission
    content: Content
    domain: SendingDomain
    recipients: list
    pool: IPPool | None


def sending_domain_for(tenant, domain_name, field_name="from"):
    """The tenant's sending domain named `domain_name` if it may send now; ValidationError with the reason otherwise."""
    try:
        domain_name = normalise_domain_name(domain_name)  # stored in IDNA form: bücher.example → xn--bcher-kva.example
    except ValidationError:
        pass  # not a domain at all: answered as "not a sending domain" below
    # Names are stored normalised: an exact match on the (tenant, name) unique index.
    domain = next(iter(rows_where(SendingDomain, tenant_id=tenant.pk, name=domain_name)), None)
    if domain is None:
        raise ValidationError(
            {field_name: f"{domain_name} is not a sending domain of this tenant: add and verify it under Domains."}
        )
    allowed, reason = domain.can_send()
    if not allowed:
        raise ValidationError({field_name: reason})
    return domain


def _pool_for(tenant, name):
    if not name:
        return None
    pool = IPPool.objects.usable_by(tenant).filter(name=name).first()
    if pool is None:
        raise ValidationError({"ip_pool": f"No IP pool named {name!r} is available to this tenant."})
    return pool


def _check_common(submission, now):
    """The rules every submission follows, structured or raw: tag, metadata, priority, send_at."""
    tag = submission.tag
    if tag:
        if not isinstance(tag, str) or len(tag) > TAG_MAX:
            raise ValidationError({"tag": f"A tag is a string of at most {TAG_MAX} characters."})
        if any(ord(c) < 32 for c in tag) or _UNSTORABLE.search(tag):
            raise ValidationError({"tag": "The tag contains control characters."})
    if not isinstance(submission.metadata, dict):
        raise ValidationError({"metadata": "Metadata must be a JSON object."})
    if submission.metadata:
        try:
            encoded = json.dumps(submission.metadata, default=str)
        except (ValueError, RecursionError):  # a circular or absurdly deep object from an internal caller
            raise ValidationError({"metadata": "Metadata must be plain JSON."}) from None
        if len(encoded) > METADATA_MAX_BYTES:
            raise ValidationError({"metadata": f"Metadata is larger than {METADATA_MAX_BYTES} bytes."})
        if _has_unstorable_text(submission.metadata):  # PostgreSQL's jsonb holds neither
            raise ValidationError({"metadata": "Metadata contains NUL characters or unpaired surrogates."})
    if submission.priority not in MessagePriority.values:
        raise ValidationError({"priority": "Unknown priority."})
    send_at = submission.send_at
    if send_at is not None:
        if not isinstance(send_at, datetime.datetime) or timezone.is_naive(send_at):
            raise ValidationError({"send_at": "A send time is a date and time with a time zone."})
        limit = settings.DELIVERY_MAX_SCHEDULE_SECONDS
        if send_at > now + datetime.timedelta(seconds=limit):
            raise ValidationError({"send_at": f"A message can be scheduled at most {limit / 86400:g} days ahead."})


def _has_unstorable_text(value):
    """Whether a JSON value holds, in any key or string, a character that no database column takes."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return False


def _envelope(addresses):
    """The envelope recipients of a raw message: at least one, each an address (or `Name <address>`)."""
    if not isinstance(addresses, (list, tuple)) or not addresses:
        raise ValidationError({"envelope": "Raw MIME needs an envelope with its recipients."})
    for value in addresses:
        if isinstance(value, str) and len(value) > ENVELOPE_ADDRESS_MAX:
            raise ValidationError({"envelope.to": f"An envelope address is at most {ENVELOPE_ADDRESS_MAX} characters."})
    return [mailbox.addr_spec for mailbox in parse_mailboxes(addresses, "envelope.to")]


def prepare(tenant, submission, domains=None, now=None):
    """Validate a submission and build its content: a `Prepared` (content, sending domain, recipients, pool).

    Raises ValidationError (field-keyed) for anything wrong; touches nothing. `domains` (name → SendingDomain)
    is shared by the submissions of one request.
    """
    now = now or timezone.now()
    _check_common(submission, now)
    if submission.raw is not None:
        if submission.sender or submission.to or submission.cc or submission.bcc:
            raise ValidationError({"raw": "Send either raw MIME with an envelope or structured fields."})
        content = normalize_raw(submission.raw, now=now)
        recipients = _envelope(submission.envelope_to)
    else:
        if not submission.sender:
            raise ValidationError({"from": "The From address is required."})
        sender = parse_mailbox(submission.sender, "from")
        to, cc = parse_mailboxes(submission.to, "to"), parse_mailboxes(submission.cc, "cc")
        bcc = parse_mailboxes(submission.bcc, "bcc")
        content = build_message(
            sender=sender,
            to=to,
            cc=cc,
            reply_to=parse_mailboxes(submission.reply_to, "reply_to"),
            subject=submission.subject,
            text=submission.text,
            html=submission.html,
            headers=submission.headers,
            attachments=submission.attachments,
            now=now,
        )
        recipients = [mailbox.addr_spec for mailbox in (*to, *cc, *bcc)]
    # One message per distinct recipient (case-insensitive domain; local parts compared as given, lower-cased).
    seen, unique = set(), []
    for rcpt in recipients:
        if rcpt.lower() not in seen:
            seen.add(rcpt.lower())
            unique.append(rcpt)
    if not unique:
        raise ValidationError({"to": "At least one recipient is required."})
    if len(unique) > settings.MESSAGE_MAX_RECIPIENTS:
        raise ValidationError({"to": f"At most {settings.MESSAGE_MAX_RECIPIENTS} recipients per request."})
    size, limit = len(content.data), settings.MESSAGE_MAX_BYTES
    if size > limit:
        raise ValidationError({"non_field_errors": f"The message is {size} bytes; the limit is {limit}."})
    domains = {} if domains is None else domains
    name = content.sender.domain
    if name not in domains:
        domains[name] = sending_domain_for(tenant, name)
    return Prepared(submission, content, domains[name], unique, _pool_for(tenant, submission.ip_pool))


def request_digest(body):
    return hashlib.sha256(body if isinstance(body, bytes) else json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_idempotency_key(key):
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or any(ord(c) < 33 or ord(c) > 126 for c in key):
        raise ValidationError({"Idempotency-Key": f"Use 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters."})
    return key


def replay(tenant, key, digest):
    """The stored answer for an Idempotency-Key, or None. A different body with the same key is a `Conflict`."""
    stored = IdempotencyKey.objects.filter(tenant=tenant, key=key).first()
    if stored is None:
        return None
    if stored.request_digest != digest:
        raise Conflict("This Idempotency-Key was used for a different request: use a new key for a new message.")
    return Accepted(messages=[], response=stored.response, status_code=stored.status_code, replayed=True)


def accept_messages(tenant, submissions, *, idempotency_key=None, digest=""):
    """Validate and store one or more submissions of `tenant`; return `Accepted` (one id per recipient).

    All or nothing: any invalid submission raises ValidationError (keyed `messages[i].field` when several)
    and nothing is stored. Suppressed recipients are stored as `suppressed` and never sent. With an
    `idempotency_key`, a retry of the same request returns the first answer instead of sending again (the same
    key with another request is a `Conflict`). It writes no audit entry (messages have their own events), so it
    takes no actor.
    """
    single = not isinstance(submissions, (list, tuple))
    items = [submissions] if single else list(submissions)
    key = check_idempotency_key(idempotency_key)
    if key:
        earlier = replay(tenant, key, digest)
        if earlier is not None:
            return earlier
    now = timezone.now()
    prepared, domains = [], {}
    for index, submission in enumerate(items):
        try:
            prepared.append(prepare(tenant, submission, domains, now))
        except ValidationError as exc:
            if single:
                raise
            raise ValidationError({f"messages[{index}].{k}": v for k, v in exc.message_dict.items()}) from None
    try:
        with transaction.atomic():
            rows, answers = _store(tenant, prepared, now)
            response = answers[0] if single else {"results": answers}
            if key:
                IdempotencyKey.objects.create(
                    tenant=tenant, key=key, request_digest=digest, status_code=202, response=response
                )
    except IntegrityError:
        if key:  # a concurrent request with the same key won the race: answer as it did
            earlier = replay(tenant, key, digest)
            if earlier is not None:
                return earlier
        raise
    return Accepted(messages=rows, response=response)


def _suppressed(tenant, addresses):
    """The addresses (lower case) on the tenant's suppression list, asked in chunks (SQLite's variable limit)."""
    addresses = sorted(addresses)
    found = set()
    for start in range(0, len(addresses), SUPPRESSION_LOOKUP_CHUNK):
        chunk = addresses[start : start + SUPPRESSION_LOOKUP_CHUNK]
        found.update(Suppression.objects.suppressed_among(tenant.pk, chunk))  # in clear or as an erased pseudonym
    return found


def _store(tenant, prepared, now):
    """Write the contents, one `Message` per recipient and its first event; the rows and the JSON answers."""
    suppressed = _suppressed(tenant, {rcpt.lower() for item in prepared for rcpt in item.recipients})
    contents = [
        MessageContent(tenant=tenant, raw=item.content.data, size=len(item.content.data), subject=item.content.subject,
                       from_header=item.content.from_header, message_id_header=item.content.message_id, created=now)
        for item in prepared
    ]  # fmt: skip
    bulk.insert(contents)
    rows, answers = [], []
    for item, content in zip(prepared, contents, strict=True):
        submission, domain, pool = item.submission, item.domain, item.pool
        rp_host = domain.return_path_host
        # A send_at in the past means now: it must neither start the retry horizon early nor jump the queue.
        send_at = max(submission.send_at, now) if submission.send_at else None
        batch = []
        for rcpt in item.recipients:
            message_uuid = uuid.uuid4()
            message = Message(
                uuid=message_uuid,
                tenant=tenant,
                content=content,
                sending_domain=domain,
                ip_pool=pool,
                mail_from=Message.verp_address(message_uuid, rp_host),
                rcpt_to=rcpt,
                rcpt_domain=rcpt.rpartition("@")[2].lower(),
                priority=submission.priority,
                tag=submission.tag or "",
                metadata=submission.metadata or {},
                next_attempt_at=send_at or now,
                send_at=send_at,
                created=now,
                updated=now,
            )
            if rcpt.lower() in suppressed:
                message.status = MessageStatus.SUPPRESSED
                message.status_detail = "The recipient is on the suppression list."
            batch.append(message)
        rows.extend(batch)
        answers.append(
            {
                "message_id": content.message_id_header,
                "messages": [{"id": str(m.uuid), "recipient": m.rcpt_to, "status": m.status} for m in batch],
            }
        )
    bulk.insert(rows)
    bulk.insert(
        [
            MessageEvent(
                message=m,
                time=now,
                kind=EventKind.SUPPRESSED if m.status == MessageStatus.SUPPRESSED else EventKind.ACCEPTED,
                detail=m.status_detail,
                data={},
            )
            for m in rows
        ]
    )
    return rows, answers


# ---------------------------------------------------------------------------------------------------------------------
# Message verbs
# ---------------------------------------------------------------------------------------------------------------------

CANCELLABLE = (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.HELD)


@transaction.atomic
def cancel_message(message, *, acting_user=None):
    """Cancel a message that has not been sent (queued, deferred or held); a message being sent cannot be."""
    with audit.acting_as(acting_user):
        updated = Message.objects.filter(pk=message.pk, status__in=CANCELLABLE, lease_owner__isnull=True).update(
            status=MessageStatus.CANCELLED, status_detail="Cancelled.", updated=timezone.now()
        )
        if not updated:
            updated = Message.objects.filter(
                pk=message.pk, status__in=CANCELLABLE, lease_expires__lt=timezone.now()
            ).update(status=MessageStatus.CANCELLED, status_detail="Cancelled.", lease_owner=None, lease_expires=None)
        if not updated:
            message.refresh_from_db()
            raise Conflict(f"The message is {message.status} and can no longer be cancelled.")
        MessageEvent.objects.create(message=message, kind=EventKind.CANCELLED)
        audit.record("message.cancel", obj=message)
        message.refresh_from_db()
        return message


@transaction.atomic
def release_message(message, *, acting_user=None):
    """Put a held message back in the queue after someone had a look: due now, with a fresh retry horizon (from
    `released_at`), and one dead worker short of being held again, so that it goes in a batch of its own."""
    with audit.acting_as(acting_user):
        now = timezone.now()
        reclaims = max(settings.DELIVERY_MAX_LEASE_RECLAIMS - 1, 0)
        updated = Message.objects.filter(pk=message.pk, status=MessageStatus.HELD).update(
            status=MessageStatus.QUEUED, status_detail="Released: queued again.", next_attempt_at=now, released_at=now,
            lease_reclaims=reclaims, lease_owner=None, lease_expires=None, updated=now,
        )  # fmt: skip
        if not updated:
            message.refresh_from_db()
            raise Conflict(f"The message is {message.status}, not held: there is nothing to release.")
        MessageEvent.objects.create(message=message, kind=EventKind.RELEASED)
        audit.record("message.release", obj=message)
        message.refresh_from_db()
        return message


# ---------------------------------------------------------------------------------------------------------------------
# Suppressions, routes, credentials
# ---------------------------------------------------------------------------------------------------------------------


def suppress_addresses(tenant_id, entries):
    """Add (address, reason, source) entries to a tenant's suppression list in bulk; existing ones stay.

    Used by workers (invalid-recipient bounces) and inbound reports (complaints); no per-row audit: the
    source names the reply or report.
    """
    now = timezone.now()
    objs = [
        Suppression(tenant_id=tenant_id, address=address.lower(), reason=reason, source=(source or "")[:500],
                    created=now, last_updated=now)
        for address, reason, source in entries
    ]  # fmt: skip
    if objs:
        Suppression.objects.bulk_create(objs, ignore_conflicts=True)


@transaction.atomic
def add_suppression(tenant, address, *, reason=SuppressionReason.MANUAL, source="", acting_user=None):
    """Add one address to a tenant's suppression list by hand (audited)."""
    with audit.acting_as(acting_user):
        address = normalize_address(address).lower()
        suppression = Suppression(tenant=tenant, address=address, reason=reason, source=source)
        suppression.full_clean(validate_unique=False)
        if Suppression.objects.suppressed_among(tenant.pk, [suppression.address]):
            raise ValidationError({"address": f"{suppression.address} is already suppressed."})
        suppression.save()
        return suppression


@transaction.atomic
def create_smtp_credential(tenant, username, *, description="", allowed_from_domains=(), allowed_networks=(),
                           acting_user=None):  # fmt: skip
    """Create an SMTP submission login; returns (credential, password). The password is generated, shown once and
    stored as a digest (as API keys are)."""
    with audit.acting_as(acting_user):
        username = (username or "").strip()
        if not username or len(username) > 150 or any(ord(c) < 33 or c == ":" for c in username):
            raise ValidationError({"name": "A user name is 1-150 printable characters without spaces or colons."})
        if SmtpCredential.objects.filter(username=username).exists():
            raise ValidationError({"name": f"The user name {username} is taken."})
        password = secrets.token_urlsafe(24)
        credential = SmtpCredential(tenant=tenant, username=username, description=description,
                                    allowed_from_domains=list(allowed_from_domains),
                                    allowed_networks=list(allowed_networks))  # fmt: skip
        credential.full_clean(exclude=["tenant", "password_digest", "username"])
        credential.set_password(password)
        credential.save()
        return credential, password


@transaction.atomic
def rotate_smtp_credential(credential, *, acting_user=None):
    """A new password for the login (returned, shown once); the old one stops working at once."""
    with audit.acting_as(acting_user):
        password = secrets.token_urlsafe(24)
        credential.set_password(password)
        credential.save()
        audit.record("smtp_credential.rotate", obj=credential)
        return password


@transaction.atomic
def revoke_smtp_credential(credential, *, acting_user=None):
    """Turn the login off (AUTH fails from now on); the row stays for the record."""
    with audit.acting_as(acting_user):
        credential.is_active = False
        credential.save()
        audit.record("smtp_credential.revoke", obj=credential)
        return credential


def authenticate_smtp(username, password, client_ip=None):
    """The active credential for this login (its tenant active, the client in its networks), or None."""
    credential = SmtpCredential.objects.select_related("tenant").filter(username=username, is_active=True).first()
    if credential is None or not credential.tenant.is_active or not credential.check_password(password):
        return None
    if client_ip is not None and not credential.allows_client(client_ip):
        return None
    credential.touch()
    return credential


# ---------------------------------------------------------------------------------------------------------------------
# Mail waiting for capacity (where mail goes: queues/delivery/destination.py)
# ---------------------------------------------------------------------------------------------------------------------


def release_capacity_waits(*, now=None):
    """Mail the scheduler held for sending capacity (a warm-up cap, a throttle rule's rate, a paused pool) is due
    again now rather than when its wait was set to end (the next local midnight for a warm-up cap): the next
    scheduler run looks at it with the capacity as it is now, and holds again what still cannot go. Called when
    ippools says capacity changed. Returns how many messages were released."""
    now = now or timezone.now()
    waiting = Message.objects.filter(
        status__in=(MessageStatus.QUEUED, MessageStatus.DEFERRED),
        next_attempt_at__gt=now,
        lease_owner__isnull=True,
        status_detail__startswith=CAPACITY_WAIT_PREFIX,
    ).exclude(send_at__gt=now)
    return waiting.update(next_attempt_at=now, updated=now)
