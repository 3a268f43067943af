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
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveryhub import audit

from .choices import EventKind, MessagePriority, MessageStatus, SuppressionReason
from .constants import IDEMPOTENCY_KEY_MAX, METADATA_MAX_BYTES, TAG_MAX
from .mime import build_message, header_summary, normalize_address, normalize_raw
from .models import IdempotencyKey, Message, MessageContent, MessageEvent, Route, SmtpCredential, Suppression

logger = logging.getLogger(__name__)

BULK_BATCH = 500  # rows per INSERT in bulk_create


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


def sending_domain_for(tenant, domain_name, field_name="from"):
    """The tenant's sending domain named `domain_name` if it may send now; ValidationError with the reason otherwise."""
    from domains.models import SendingDomain, normalise_domain_name

    try:
        domain_name = normalise_domain_name(domain_name)  # stored in IDNA form: bücher.example → xn--bcher-kva.example
    except ValidationError:
        pass  # not a domain at all: answered as "not a sending domain" below
    domain = SendingDomain.objects.filter(tenant=tenant, name__iexact=domain_name).first()
    if domain is None:
        raise ValidationError(
            {field_name: f"{domain_name} is not a sending domain of this tenant: add and verify it under Domains."}
        )
    allowed, reason = _domain_may_send(domain)
    if not allowed:
        raise ValidationError({field_name: reason})
    return domain


def _domain_may_send(domain):
    """(allowed, reason): asks the domains app (`can_send()` returns a bool or (bool, reason))."""
    result = domain.can_send()
    if isinstance(result, tuple):
        allowed, reason = result
    else:
        allowed, reason = bool(result), ""
    if not allowed and not reason:
        reason = getattr(domain, "cannot_send_reason", "") or f"{domain.name} may not send yet: verify its DNS records."
    return allowed, reason


def return_path_host(domain):
    """The host of the domain's VERP envelope senders (its return-path subdomain)."""
    for attr in ("return_path_host", "return_path_domain"):
        value = getattr(domain, attr, None)
        value = value() if callable(value) else value
        if value:
            return value
    sub = getattr(domain, "return_path", "") or getattr(domain, "return_path_subdomain", "")
    return f"{sub}.{domain.name}" if sub and not sub.endswith(domain.name) else (sub or domain.name)


def _pool_for(tenant, name):
    if not name:
        return None
    from ippools.models import IPPool

    pool = IPPool.objects.usable_by(tenant).filter(name=name).first()
    if pool is None:
        raise ValidationError({"ip_pool": f"No IP pool named {name!r} is available to this tenant."})
    return pool


def _check_common(submission):
    if submission.tag and (not isinstance(submission.tag, str) or len(submission.tag) > TAG_MAX):
        raise ValidationError({"tag": f"A tag is a string of at most {TAG_MAX} characters."})
    if submission.tag and any(ord(c) < 32 for c in submission.tag):
        raise ValidationError({"tag": "The tag contains control characters."})
    if not isinstance(submission.metadata, dict):
        raise ValidationError({"metadata": "Metadata must be a JSON object."})
    if len(json.dumps(submission.metadata, default=str)) > METADATA_MAX_BYTES:
        raise ValidationError({"metadata": f"Metadata is larger than {METADATA_MAX_BYTES} bytes."})
    if submission.priority not in MessagePriority.values:
        raise ValidationError({"priority": "Unknown priority."})
    send_at = submission.send_at
    if send_at is not None:
        if not isinstance(send_at, datetime.datetime) or timezone.is_naive(send_at):
            raise ValidationError({"send_at": "A send time is a date and time with a time zone."})
        limit = settings.DELIVERY_MAX_SCHEDULE_SECONDS
        if send_at > timezone.now() + datetime.timedelta(seconds=limit):
            raise ValidationError({"send_at": f"A message can be scheduled at most {limit / 86400:g} days ahead."})


def _recipients(addresses, field_name):
    out = []
    for index, value in enumerate(addresses or ()):
        if not isinstance(value, str):
            raise ValidationError({field_name: f"Item {index} is not a string."})
        # "Name <addr>" is allowed in to/cc/bcc; the envelope uses the address.
        from .mime import parse_mailbox

        out.append(parse_mailbox(value, field_name).addr_spec if "<" in value else normalize_address(value, field_name))
    return out


def prepare(tenant, submission, domains=None):
    """Validate a submission and build its content: (message bytes, sending domain, recipients, pool).

    Raises ValidationError (field-keyed) for anything wrong; touches nothing.
    """
    _check_common(submission)
    if submission.raw is not None:
        data, from_address = normalize_raw(submission.raw)
        recipients = _recipients(submission.envelope_to, "envelope.to")
    else:
        if not submission.sender:
            raise ValidationError({"from": "The From address is required."})
        data, from_address = build_message(
            sender=submission.sender,
            to=submission.to,
            cc=submission.cc,
            reply_to=submission.reply_to,
            subject=submission.subject,
            text=submission.text,
            html=submission.html,
            headers=submission.headers,
            attachments=submission.attachments,
        )
        recipients = _recipients(submission.to, "to") + _recipients(submission.cc, "cc")
        recipients += _recipients(submission.bcc, "bcc")
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
    if len(data) > settings.MESSAGE_MAX_BYTES:
        raise ValidationError(
            {"non_field_errors": f"The message is {len(data)} bytes; the limit is {settings.MESSAGE_MAX_BYTES}."}
        )
    domains = {} if domains is None else domains  # name -> SendingDomain, shared by the submissions of one request
    if from_address.domain not in domains:
        domains[from_address.domain] = sending_domain_for(tenant, from_address.domain)
    domain = domains[from_address.domain]
    pool = _pool_for(tenant, submission.ip_pool)
    return data, domain, unique, pool


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
    """The stored answer for an Idempotency-Key, or None. A different body with the same key is refused."""
    stored = IdempotencyKey.objects.filter(tenant=tenant, key=key).first()
    if stored is None:
        return None
    if stored.request_digest != digest:
        raise ValidationError(
            {"Idempotency-Key": "This key was used for a different request: use a new key for a new message."}
        )
    return Accepted(messages=[], response=stored.response, status_code=stored.status_code, replayed=True)


def accept_messages(tenant, submissions, *, acting_user=None, idempotency_key=None, digest=""):
    """Validate and store one or more submissions of `tenant`; return `Accepted` (one id per recipient).

    All or nothing: any invalid submission raises ValidationError (keyed `messages[i].field` when several)
    and nothing is stored. Suppressed recipients are stored as `suppressed` and never sent. With an
    `idempotency_key`, a retry of the same request returns the first answer instead of sending again.
    """
    single = not isinstance(submissions, (list, tuple))
    items = [submissions] if single else list(submissions)
    key = check_idempotency_key(idempotency_key)
    if key:
        earlier = replay(tenant, key, digest)
        if earlier is not None:
            return earlier
    prepared, domains = [], {}
    for index, submission in enumerate(items):
        try:
            prepared.append((submission, *prepare(tenant, submission, domains)))
        except ValidationError as exc:
            if single:
                raise
            raise ValidationError({f"messages[{index}].{k}": v for k, v in exc.message_dict.items()}) from None
    try:
        with transaction.atomic():
            rows, answers = _store(tenant, prepared)
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


def _store(tenant, prepared):
    now = timezone.now()
    all_rcpts = {rcpt.lower() for item in prepared for rcpt in item[3]}
    suppressed = set(Suppression.objects.filter(tenant=tenant, address__in=all_rcpts).values_list("address", flat=True))
    contents = []
    for _, data, *_rest in prepared:
        subject, from_header, message_id = header_summary(data)
        contents.append(MessageContent(tenant=tenant, raw=data, size=len(data), subject=subject,
                                       from_header=from_header, message_id_header=message_id, created=now))  # fmt: skip
    MessageContent.objects.bulk_create(contents, batch_size=BULK_BATCH)
    rows, answers = [], []
    for (submission, _, domain, recipients, pool), content in zip(prepared, contents, strict=True):
        rp_host = return_path_host(domain)
        # A send_at in the past means now: it must neither start the retry horizon early nor jump the queue.
        send_at = max(submission.send_at, now) if submission.send_at else None
        batch = []
        for rcpt in recipients:
            message = Message(
                tenant=tenant,
                content=content,
                sending_domain=domain,
                ip_pool=pool,
                rcpt_to=rcpt,
                rcpt_domain=rcpt.rpartition("@")[2].lower(),
                priority=submission.priority,
                tag=submission.tag or "",
                metadata=submission.metadata or {},
                next_attempt_at=send_at or now,
                send_at=send_at,
                created=now,
            )
            message.mail_from = Message.verp_address(message.uuid, rp_host)
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
    Message.objects.bulk_create(rows, batch_size=BULK_BATCH)
    # bulk_create sets primary keys on PostgreSQL and SQLite (RETURNING); fetch them if a backend did not.
    if rows and rows[0].pk is None:
        ids = dict(Message.objects.filter(uuid__in=[m.uuid for m in rows]).values_list("uuid", "pk"))
        for m in rows:
            m.pk = m.id = ids[m.uuid]
    MessageEvent.objects.bulk_create(
        [
            MessageEvent(
                message=m,
                time=now,
                kind=EventKind.SUPPRESSED if m.status == MessageStatus.SUPPRESSED else EventKind.ACCEPTED,
                detail=m.status_detail,
            )
            for m in rows
        ],
        batch_size=BULK_BATCH,
    )
    return rows, answers


# ---------------------------------------------------------------------------------------------------------------------
# Message verbs
# ---------------------------------------------------------------------------------------------------------------------

CANCELLABLE = (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.HELD)


@transaction.atomic
def cancel_message(message, *, acting_user=None):
    """Cancel a message that has not been sent (queued, deferred or held); a message being sent cannot be."""
    updated = Message.objects.filter(pk=message.pk, status__in=CANCELLABLE, lease_owner__isnull=True).update(
        status=MessageStatus.CANCELLED, status_detail="Cancelled.", updated=timezone.now()
    )
    if not updated:
        updated = Message.objects.filter(
            pk=message.pk, status__in=CANCELLABLE, lease_expires__lt=timezone.now()
        ).update(status=MessageStatus.CANCELLED, status_detail="Cancelled.", lease_owner=None, lease_expires=None)
    if not updated:
        from deliveryhub.api.exceptions import Conflict

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
    now = timezone.now()
    reclaims = max(settings.DELIVERY_MAX_LEASE_RECLAIMS - 1, 0)
    updated = Message.objects.filter(pk=message.pk, status=MessageStatus.HELD).update(
        status=MessageStatus.QUEUED, status_detail="Released: queued again.", next_attempt_at=now, released_at=now,
        lease_reclaims=reclaims, lease_owner=None, lease_expires=None, updated=now,
    )  # fmt: skip
    if not updated:
        from deliveryhub.api.exceptions import Conflict

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
    suppression = Suppression(tenant=tenant, address=normalize_address(address).lower(), reason=reason, source=source)
    suppression.full_clean(validate_unique=False)
    if Suppression.objects.filter(tenant=tenant, address=suppression.address).exists():
        raise ValidationError({"address": f"{suppression.address} is already suppressed."})
    suppression.save()
    return suppression


@transaction.atomic
def create_smtp_credential(tenant, username, *, description="", acting_user=None):
    """Create an SMTP submission login; returns (credential, password). The password is shown once."""
    import secrets

    username = (username or "").strip()
    if not username or len(username) > 150 or any(ord(c) < 33 for c in username):
        raise ValidationError({"username": "A user name is 1-150 printable characters without spaces."})
    if SmtpCredential.objects.filter(username=username).exists():
        raise ValidationError({"username": f"The user name {username} is taken."})
    password = secrets.token_urlsafe(24)
    credential = SmtpCredential(tenant=tenant, username=username, description=description)
    credential.set_password(password)
    credential.save()
    return credential, password


def authenticate_smtp(username, password):
    """The active credential for this login (its tenant active), or None."""
    credential = SmtpCredential.objects.select_related("tenant").filter(username=username, is_active=True).first()
    if credential is None or not credential.tenant.is_active or not credential.check_password(password):
        return None
    credential.touch()
    return credential


def route_for(tenant_id, domain, routes=None):
    """The tenant's enabled route for a recipient domain (most specific match), or None."""
    if routes is None:
        routes = list(Route.objects.filter(tenant_id=tenant_id, enabled=True))
    matching = [r for r in routes if r.tenant_id == tenant_id and r.enabled and r.matches(domain)]
    if not matching:
        return None
    return min(matching, key=lambda r: (r.specificity(), r.priority, r.pk))
