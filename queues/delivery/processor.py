"""
The processor: one batch of claimed messages through an ordered list of verb-named steps, the whole path:

    check_suppression → check_domain → check_limits → resolve_destination → sign → send → settle → finish

Every step works on the whole batch (a `Batch` of `Item`s) and decides what it can: it settles an item (an
`Outcome`: delivered, bounced, deferred, suppressed, or "release" = give back unsent), and later steps see only the
items still open. A step that finds nothing open raises `StopProcessing` (`Batch.pending()`), and the batch goes
straight to `finish`. A failure that belongs to one message (a broken key, a content that cannot be read) settles
that message as deferred with the error recorded — one poison message never stops its batch, and the worker never
crash-loops. `finish` writes every outcome in bulk, in one transaction, and only for rows whose lease this
worker's token still holds.

Where the batch goes (route, demo capture server or MX hosts, and the provider it counts against) is decided by
`destination.destination_for`, the same function the scheduler used, before anything is signed.
"""

import logging
import math
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from rq.timeouts import JobTimeoutException

from domains.choices import TLSPolicy
from domains.models import SendingDomain
from domains.services import signing_keys
from ippools import services as ip_services
from ippools.choices import Provider
from ippools.models import IPAddress
from ippools.providers import provider_for

from ..choices import AttemptStatus, EventKind, MessageStatus, RuleAction, SuppressionReason
from ..constants import ATTEMPT_TEXT_MAX, STATUS_DETAIL_MAX
from ..models import BounceRule, DeliveryAttempt, Message, MessageContent, MessageEvent, Suppression
from ..services import suppress_addresses
from . import lease, state
from .backoff import is_expired, next_attempt_delay
from .classifier import classify_result
from .destination import destination_for, tenant_routes
from .dkim import DkimSigner, sign_message
from .limits import PairGate
from .result import SendResult
from .senders.smtp import OutboundMessage

logger = logging.getLogger(__name__)

POISON_RETRY_SECONDS = 900  # a message that broke processing is retried after this long
DOMAIN_BLOCKED_RETRY_SECONDS = 600  # the sending domain may not send: look again after this long
UPDATE_CHUNK = 500  # ids per UPDATE … WHERE id IN (…)
SIGNER_CACHE_SIZE = 1000  # loaded DKIM keys kept per worker process
RELEASE = "release"  # an Outcome status: give the row back unsent, no attempt counted
WRITE_RETRY_FIRST_DELAY = 0.2  # seconds before the first retry of a write whose database connection was lost
WRITE_RETRY_MAX_DELAY = 5.0  # the delay doubles up to this


class StopProcessing(Exception):
    """Raised when a batch has nothing left for the next steps: processing goes straight to `finish`."""


@dataclass
class Outcome:
    """How one message's processing ended in this batch."""

    status: str  # a MessageStatus, or RELEASE (give back unsent)
    detail: str = ""
    result: SendResult | None = None  # the SendResult when an SMTP try happened
    category: str = ""
    action: str = ""
    suppress: str = ""  # a SuppressionReason when the recipient must be suppressed
    retry_at: object = None
    event: str = ""  # an EventKind to record
    unknown: bool = False  # the receiver may have taken the message although we have no 2xx for it


@dataclass
class Item:
    """One claimed message in a batch: its signed bytes, the sender's result, and how it ended."""

    message: Message
    data: bytes = b""
    result: SendResult | None = None  # what `send` got back (None: not tried, or no answer)
    verdict: object = None  # classifier.Classification of the result
    handed: bool = False  # given to the sender (it may be on the wire)
    sent: bool = False  # the sender is done with it (tried, with or without a result)
    outcome: Outcome | None = None
    record: tuple | None = None  # the rows to write for the outcome, prepared once (`_prepare`)
    written: bool = False  # the outcome is in the database (or the lease was lost: not ours to write)


@dataclass
class Batch:
    """The claimed messages of one batch job (one tenant, pool and recipient domain) and what the steps found."""

    token: str  # the lease token of the claim (queues/delivery/lease.py)
    items: list
    now: object = field(default_factory=timezone.now)
    target: object = None  # destination.Target: route, capture or MX, and the provider
    rules: list = field(default_factory=list)  # admins' bounce rules, tried before the defaults
    rate_limited: set = field(default_factory=set)  # source IP ids slowed by this batch
    deadline: float = math.inf  # time.monotonic() after which no new SMTP transaction starts
    written: list = field(default_factory=list)  # the rows whose outcome this batch wrote
    flushed_at: float = field(default_factory=time.monotonic)
    renew_at: float = math.inf  # time.monotonic() when the lease is extended next

    def open(self):
        """Items no step has settled yet."""
        return [item for item in self.items if item.outcome is None]

    def pending(self):
        """The open items; `StopProcessing` when there are none (the remaining steps have nothing to do)."""
        items = self.open()
        if not items:
            raise StopProcessing("no open message left")
        return items

    @property
    def provider(self):
        """The mailbox provider the batch counts against (the scheduler judged it the same way)."""
        if self.target is not None:
            return self.target.provider
        return provider_for(self.items[0].message.rcpt_domain)


# ---------------------------------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------------------------------


def check_suppression(batch):
    """Recipients suppressed since intake are never sent to."""
    items = batch.pending()
    tenant_id = items[0].message.tenant_id
    suppressed = set(
        Suppression.objects.filter(
            tenant_id=tenant_id, address__in=[i.message.rcpt_to.lower() for i in items]
        ).values_list("address", flat=True)
    )
    for item in items:
        if item.message.rcpt_to.lower() in suppressed:
            item.outcome = Outcome(
                MessageStatus.SUPPRESSED, "The recipient is on the suppression list.", event=EventKind.SUPPRESSED
            )


def check_domain(batch):
    """A sending domain that may no longer send (DNS broken, disabled) gives its messages back for later."""
    verdicts = {}
    for item in batch.pending():
        domain = item.message.sending_domain
        if domain.pk not in verdicts:
            verdicts[domain.pk] = domain.can_send()
        allowed, reason = verdicts[domain.pk]
        if not allowed:
            item.outcome = Outcome(
                RELEASE, f"Sending domain blocked: {reason}",
                retry_at=batch.now + timezone.timedelta(seconds=DOMAIN_BLOCKED_RETRY_SECONDS),
            )  # fmt: skip


def check_limits(batch):
    """The source IP chosen by the scheduler must still be owned by this node; else give the rows back."""
    for item in batch.pending():
        ip = item.message.source_ip
        if ip is None or ip.node.name != settings.NODE_NAME:
            item.outcome = Outcome(RELEASE, "Source IP not owned by this node: rescheduled.")


def resolve_destination(batch):
    """Where this batch goes (`destination_for`: route, demo capture server or MX hosts, and the provider), decided
    before signing: a destination that settles the mail without connecting (null MX, NXDOMAIN, SERVFAIL) settles it
    here, and nothing is signed for it."""
    first = batch.pending()[0].message
    batch.target = destination_for(first.tenant_id, first.rcpt_domain, tenant_routes(first.tenant_id))
    if batch.target.error is not None:
        for item in batch.open():
            item.result = batch.target.error
            _settle_one(batch, item)


_signer_cache = {}  # (key pk, last change) -> DkimSigner: loading a private key costs more than signing with it


def _signers_for(domain):
    """The domain's signers: keys looked up every batch (rotations apply at once), each key loaded once."""
    signers = []
    for key in signing_keys(domain):
        cache_key = (key.pk, key.last_updated)
        signer = _signer_cache.get(cache_key)
        if signer is None:
            if len(_signer_cache) >= SIGNER_CACHE_SIZE:
                _signer_cache.clear()
            signer = DkimSigner(domain.name, key.selector, key.private_key_pem(), key.algorithm)
            _signer_cache[cache_key] = signer
        signers.append(signer)
    return signers


def sign(batch):
    """DKIM-sign each content once per batch (recipients of one content share its signature)."""
    signed, signers_by_domain = {}, {}
    for item in batch.pending():
        message = item.message
        key = (message.content_id, message.sending_domain_id)
        try:
            if key not in signed:
                raw = bytes(message.content.raw)
                if message.sending_domain_id not in signers_by_domain:
                    signers_by_domain[message.sending_domain_id] = _signers_for(message.sending_domain)
                signers = signers_by_domain[message.sending_domain_id]
                signed[key] = sign_message(raw, signers) if signers else raw
            item.data = signed[key]
        except Exception as exc:  # a poison message: record, retry much later, keep going
            logger.exception("Message %s: signing failed", message.uuid)
            item.outcome = Outcome(
                MessageStatus.DEFERRED, f"Processing error while signing: {type(exc).__name__}: {exc}",
                retry_at=batch.now + timezone.timedelta(seconds=POISON_RETRY_SECONDS), event=EventKind.ERROR,
            )  # fmt: skip


def send(batch):
    """Hand the open messages to the connection pool (many connections at once), per source IP. Results stream back
    while the batch is under way and are settled and recorded as they come (`_arrived`): an accepted message is in
    the database within DELIVERY_FLUSH_MESSAGES messages or DELIVERY_FLUSH_SECONDS of its 250. No new transaction
    starts past the batch deadline (DELIVERY_BATCH_SECONDS): what was not tried by then goes back unchanged. A pair
    suspended since scheduling, or rate limited now, gives back what was not tried."""
    destination = batch.target.destination
    by_ip = {}
    for item in batch.pending():
        by_ip.setdefault(item.message.source_ip_id, []).append(item)
    for group in by_ip.values():
        ip = group[0].message.source_ip
        limits = _pair_limits(batch, ip)
        if limits is not None and limits.suspended_until is not None:  # suspended since scheduling: give back
            _release_rate_limited(batch, group, limits.suspended_until)
            continue
        if time.monotonic() >= batch.deadline:
            _release_past_deadline(group)
            continue
        route = batch.target.route
        tls_policy = TLSPolicy.REQUIRED if (route and route.tls_required) else _tls_policy(group[0].message)
        outbound = [
            OutboundMessage(id=item.message.pk, mail_from=item.message.mail_from, rcpt_to=item.message.rcpt_to,
                            data=item.data)
            for item in group
        ]  # fmt: skip
        by_id = {item.message.pk: item for item in group}
        for item in group:
            item.handed = True
        started = time.monotonic()
        results = state.deliver(
            outbound, destination=destination, source_ip=ip.address,
            ehlo_hostname=ip.ehlo_hostname or settings.SMTPD_HOSTNAME, tls_policy=tls_policy,
            concurrency=limits.connections if limits else settings.DELIVERY_BATCH_CONCURRENCY,
            max_messages_per_connection=limits.messages_per_connection if limits else None,
            stop_when=lambda result: _classify(batch, result).action == RuleAction.DEFER_SLOW,
            gate=PairGate.for_limits(ip.pk, batch.provider, limits),
            deadline=batch.deadline, on_results=lambda arrived, by_id=by_id: _arrived(batch, by_id, arrived),
            flush_messages=settings.DELIVERY_FLUSH_MESSAGES, flush_seconds=settings.DELIVERY_FLUSH_SECONDS,
        )  # fmt: skip
        unusable = next((result for result in results.values() if result.source_unusable), None)
        if unusable is not None:  # the IP cannot be bound on this node: paused, its rows go to another IP
            ip_services.pause_unbindable_ip(ip, reason=unusable.text)
            for item in group:
                item.outcome = Outcome(RELEASE, f"Source IP {ip.address} cannot be bound here: paused, rescheduled.")
            continue
        logger.info("Sent %d message(s) to %s from %s in %.2fs", len(results), group[0].message.rcpt_domain,
                    ip.address, time.monotonic() - started)  # fmt: skip
        for item in group:
            item.sent = True
            if item.result is None and item.message.pk in results:  # answered without streaming (no connection)
                item.result = results[item.message.pk]
                item.verdict = _classify(batch, item.result)
        untried = [item for item in group if item.outcome is None and item.result is None]
        limited = [(item.result, item.verdict) for item in group
                   if item.verdict is not None and item.verdict.action == RuleAction.DEFER_SLOW]  # fmt: skip
        if limited:  # the receiver asked us to slow down: slow the pair now, give back what was not tried
            until = _rate_limited(batch, ip, limited)
            _release_rate_limited(batch, untried, until)
        elif untried and time.monotonic() >= batch.deadline:
            _release_past_deadline(untried)


def _arrived(batch, by_id, arrived):
    """Results streaming in from the pool (in the batch's thread): settle them, record them every
    DELIVERY_FLUSH_MESSAGES messages or DELIVERY_FLUSH_SECONDS, and keep the lease on what is still open."""
    for message_id, result in arrived:
        item = by_id[message_id]
        item.result = result
        item.verdict = _classify(batch, result)
        item.sent = True
        _settle_one(batch, item)
    unwritten = sum(1 for item in batch.items if item.outcome is not None and not item.written)
    if unwritten >= settings.DELIVERY_FLUSH_MESSAGES or (
        unwritten and time.monotonic() - batch.flushed_at >= settings.DELIVERY_FLUSH_SECONDS
    ):
        flush(batch)
    _renew_lease(batch)


def _release_past_deadline(items):
    for item in items:
        item.outcome = Outcome(RELEASE, "Not tried before the batch deadline: rescheduled.")


def settle(batch):
    """Turn each tried message's result into its outcome (a message handed to the sender without an answer is
    deferred as a transient failure)."""
    for item in batch.pending():
        if item.sent:
            _settle_one(batch, item)


def _pair_limits(batch, ip):
    """The (source IP, provider) pair's limits now (ippools: throttle rules, adaptive slow-down, suspension)."""
    try:
        return ip_services.pair_limits(ip, batch.provider, tenant_id=batch.items[0].message.tenant_id,
                                       connections=settings.DELIVERY_BATCH_CONCURRENCY)  # fmt: skip
    except Exception:  # throttle state unreadable (Redis away): send with the defaults rather than not at all
        logger.exception("Reading the throttle state of %s failed", ip)
        return None


def _rate_limited(batch, ip, limited):
    """Slow and suspend the pair after rate-limit replies ([(result, verdict)]); returns when it may send again."""
    batch.rate_limited.add(ip.pk)
    hint = max((verdict.retry_after or 0 for _, verdict in limited), default=0)
    try:
        throttle = ip_services.rate_limited(ip, batch.provider, reply=limited[0][0].smtp_output, hint=hint)
    except Exception:
        logger.exception("Slowing %s toward %s failed", ip, batch.provider)
        return None
    return throttle.until_datetime


def _release_rate_limited(batch, items, until):
    name = Provider(batch.provider).label
    when = f" until {until:%Y-%m-%d %H:%M:%S} UTC" if until else ""
    for item in items:
        item.outcome = Outcome(RELEASE, f"Rate limited by {name}{when}: not tried, rescheduled.", retry_at=until)


def _tls_policy(message):
    return TLSPolicy.REQUIRED if message.sending_domain.tls_policy == TLSPolicy.REQUIRED else TLSPolicy.OPPORTUNISTIC


def _classify(batch, result):
    """The one classification of an attempt: the defaults plus the tenant's and the platform's BounceRules."""
    return classify_result(result, rules=batch.rules, provider=batch.provider)


def _settle_one(batch, item):
    """Turn one item's SendResult (and its classification) into the message's outcome."""
    result = item.result
    if result is None:
        result = SendResult(None, None, "No result from the sender.", connect_error=True)
    category, action, retry_after = item.verdict or _classify(batch, result)
    message = item.message
    reply = " ".join(str(p) for p in (result.code, result.enhanced, result.text) if p).strip()
    if action == RuleAction.DELIVER:
        # The same words for every delivered row (the reply itself is on the attempt): rows update in one statement.
        detail = f"Delivered to {result.mx_host or 'the receiving server'}."
        item.outcome = Outcome(MessageStatus.DELIVERED, detail, result, category, action, event=EventKind.DELIVERED)
    elif action in (RuleAction.BOUNCE, RuleAction.BOUNCE_SUPPRESS):
        suppress = SuppressionReason.HARD_BOUNCE if action == RuleAction.BOUNCE_SUPPRESS else ""
        item.outcome = Outcome(MessageStatus.BOUNCED, reply, result, category, action, suppress,
                               event=EventKind.BOUNCED)  # fmt: skip
    else:
        attempts = message.attempts + 1
        first = message.first_attempt_at or batch.now
        if is_expired(first, batch.now):
            item.outcome = Outcome(MessageStatus.EXPIRED, f"Retry horizon reached. Last reply: {reply}", result,
                                   category, action, event=EventKind.EXPIRED)  # fmt: skip
        else:
            delay = next_attempt_delay(attempts, hint=retry_after)
            item.outcome = Outcome(MessageStatus.DEFERRED, reply, result, category, action,
                                   retry_at=batch.now + timezone.timedelta(seconds=delay),
                                   event=EventKind.DEFERRED, unknown=result.outcome_unknown)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Writing outcomes
# ---------------------------------------------------------------------------------------------------------------------


FIELDS = ["status", "status_detail", "lease_owner", "lease_expires", "lease_reclaims", "updated", "attempts",
          "first_attempt_at", "last_attempt_at", "delivered_at", "next_attempt_at", "outcome_unknown"]  # fmt: skip


def flush(batch):
    """Record the outcomes settled so far (not the rows to give back: they wait for `finish`). A database that stays
    away past DELIVERY_WRITE_RETRY_SECONDS leaves them in memory for the next flush or `finish`."""
    items = [item for item in batch.items if item.outcome is not None and not item.written and
             item.outcome.status != RELEASE]  # fmt: skip
    if not items:
        return
    try:
        _write(batch, items)
    except (OperationalError, InterfaceError):
        logger.exception("Batch %s: recording %d outcome(s) failed; kept for the next try", batch.token, len(items))


def finish(batch):
    """Record every outcome not recorded yet, and give back what was not sent; then tell ippools how the IPs did.
    Returns every row whose outcome the batch wrote (streamed flushes included)."""
    for item in batch.open():  # processing stopped early: give back unsent
        item.outcome = Outcome(RELEASE, "Processing stopped early: rescheduled.")
    items = [item for item in batch.items if not item.written]
    if items:
        _write(batch, items)
    return batch.written


def _write(batch, items):
    """Write the items' outcomes in one transaction — rows, attempts, events, suppressions, releases — only where
    the batch's token still holds the lease; a lost database connection is re-opened and the write tried again."""
    now = timezone.now()
    for item in items:
        if item.record is None:
            item.record = _prepare(item, now)
    rows = [item.record[0] for item in items if item.record[0] is not None]
    attempts = [item.record[1] for item in items if item.record[1] is not None]
    events = [item.record[2] for item in items if item.record[2] is not None]
    suppressions = [item.record[3] for item in items if item.record[3] is not None]
    released = {}
    for item in items:
        outcome = item.outcome
        if outcome.status == RELEASE:
            released.setdefault((outcome.retry_at, outcome.detail, outcome.unknown), []).append(item.message.pk)

    def write():
        with transaction.atomic():
            mine = _write_mine(batch.token, rows, FIELDS)
            _insert(DeliveryAttempt, [a for a in attempts if a["message_id"] in mine])
            _insert(MessageEvent, [e for e in events if e["message_id"] in mine])
            if suppressions:
                suppress_addresses(batch.items[0].message.tenant_id, suppressions)
            for (retry_at, detail, unknown), ids in released.items():
                lease.release(batch.token, ids, next_attempt_at=retry_at, detail=detail, outcome_unknown=unknown)
        return mine

    mine = _durably(write, batch.token)
    for item in items:
        item.written = True
    lost = [m for m in rows if m.pk not in mine]
    if lost:
        logger.warning("Lease lost on %d message(s) of batch %s: their outcome is not written", len(lost),
                       batch.token)  # fmt: skip
    rows = [m for m in rows if m.pk in mine]
    batch.written += rows
    batch.flushed_at = time.monotonic()
    _record_ip_outcomes(batch, rows)


def _prepare(item, now):
    """(message row, attempt row, event row, suppression) of one settled item, computed once (a write tried again
    must not count the attempt twice). A released item has none of them."""
    message, outcome = item.message, item.outcome
    if outcome.status == RELEASE:
        return None, None, None, None
    message.status = outcome.status
    message.status_detail = (outcome.detail or "")[:STATUS_DETAIL_MAX]
    message.lease_owner = None
    message.lease_expires = None
    message.lease_reclaims = 0  # a worker got through with it: earlier deaths were not its doing
    message.updated = now
    result, attempt, event, suppression = outcome.result, None, None, None
    if result is not None:
        message.attempts += 1
        message.first_attempt_at = message.first_attempt_at or now
        message.last_attempt_at = now
        attempt = _attempt_row(message, result, outcome, now)
    # The next attempt is a possible duplicate if this one's outcome is unknown (the flag on the attempt row says
    # whether *this* attempt may repeat an earlier one).
    message.outcome_unknown = outcome.unknown or (result is None and message.outcome_unknown)
    if outcome.status == MessageStatus.DELIVERED:
        message.delivered_at = now
    if outcome.status == MessageStatus.DEFERRED:
        message.next_attempt_at = outcome.retry_at or now
    if outcome.event:
        detail = result.smtp_output if result is not None else message.status_detail
        event = dict(message_id=message.pk, time=now, kind=outcome.event, detail=detail, data=_event_data(result))
    if outcome.suppress:
        suppression = (message.rcpt_to, outcome.suppress, f"{message.uuid}: {message.status_detail}")
    return message, attempt, event, suppression


def _durably(write, token):
    """`write()`, tried again on a fresh database connection when the connection was lost (a failover, a restart,
    terminated backends) — with backoff from WRITE_RETRY_FIRST_DELAY doubling to WRITE_RETRY_MAX_DELAY, for at
    most DELIVERY_WRITE_RETRY_SECONDS. Outcomes in memory are not given up while the database may come back."""
    give_up = time.monotonic() + settings.DELIVERY_WRITE_RETRY_SECONDS
    delay = WRITE_RETRY_FIRST_DELAY
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError):
            if connection.in_atomic_block or time.monotonic() + delay > give_up:
                raise
            logger.warning("Batch %s: database connection lost while recording outcomes; retrying in %.1fs",
                           token, delay, exc_info=True)  # fmt: skip
            connection.close()
            time.sleep(delay)
            delay = min(delay * 2, WRITE_RETRY_MAX_DELAY)


def _renew_lease(batch):
    """Extend the lease of the rows still open when a third of it is left (a batch may outlast one lease)."""
    now = time.monotonic()
    if now < batch.renew_at:
        return
    batch.renew_at = now + settings.DELIVERY_LEASE_SECONDS / 3
    ids = [item.message.pk for item in batch.items if not item.written]
    try:
        lease.renew(batch.token, ids)
    except (OperationalError, InterfaceError):  # the next tick tries again; meanwhile the lease still runs
        logger.warning("Batch %s: renewing the lease failed", batch.token, exc_info=True)
        batch.renew_at = now + 1


def _insert(model, rows):
    """INSERT `rows` (dicts of every field's attname -> value) in one executemany.

    bulk_create builds a model instance per row and converts every value of every row, which was a third of a
    worker's database time. A batch's attempts and events repeat a few values (the time, the node, the reply), so
    each field converts each distinct value once. No primary keys come back (nothing here needs them).
    """
    if not rows:
        return
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    columns = [(model_field.attname, _converter(model_field)) for model_field in fields]
    params = [[prep(row[name]) for name, prep in columns] for row in rows]
    with connection.cursor() as cursor:
        for start in range(0, len(params), UPDATE_CHUNK):
            cursor.executemany(sql, params[start : start + UPDATE_CHUNK])


def _converter(model_field):
    """`model_field`'s value-to-database conversion, each distinct (hashable) value converted once."""
    converted = {}

    def prep(value):
        try:
            return converted[value]
        except KeyError:
            result = converted[value] = model_field.get_db_prep_save(value, connection)
            return result
        except TypeError:  # unhashable (a JSON value)
            return model_field.get_db_prep_save(value, connection)

    return prep


def _write_mine(token, rows, fields):
    """Write the rows' outcomes where this worker still holds the lease (inside finish's transaction); returns the
    ids written. Usually every row is still ours, and the UPDATEs (each filtered by the lease) say so by their counts,
    with no SELECT before them; when a lease was lost meanwhile, the writes are undone (a savepoint) and done again
    for the rows still held (`still_mine` locks them first)."""
    ids = {message.pk for message in rows}
    savepoint = transaction.savepoint()
    if _write_rows(rows, fields, token) == len(ids):
        transaction.savepoint_commit(savepoint)
        return ids
    transaction.savepoint_rollback(savepoint)
    mine = lease.still_mine(token, list(ids))
    _write_rows([message for message in rows if message.pk in mine], fields, token)
    return mine


def _write_rows(rows, fields, token):
    """Write the rows' outcome fields where `token` holds the lease: one UPDATE per distinct set of values (a batch
    has few), not a CASE per row. Returns how many rows were written."""
    groups = {}
    for message in rows:
        values = tuple(getattr(message, name) for name in fields)
        groups.setdefault(values, []).append(message.pk)
    written = 0
    for values, ids in groups.items():
        for start in range(0, len(ids), UPDATE_CHUNK):
            chunk = ids[start : start + UPDATE_CHUNK]
            changes = dict(zip(fields, values, strict=True))
            written += Message.objects.filter(pk__in=chunk, lease_owner=token).update(**changes)
    return written


def _attempt_row(message, result, outcome, now):
    status = {MessageStatus.DELIVERED: AttemptStatus.DELIVERED, MessageStatus.BOUNCED: AttemptStatus.BOUNCED}.get(
        outcome.status, AttemptStatus.DEFERRED
    )
    return dict(
        message_id=message.pk,
        time=now,
        status=status,
        node=settings.NODE_NAME,
        source_ip=result.source_ip or (message.source_ip.address if message.source_ip else ""),
        mx_host=result.mx_host or "",
        tls_version=result.tls_version or "",
        tls_verified=bool(result.tls_verified),
        code=result.code,
        enhanced_code=result.enhanced or "",
        text=(result.text or "")[:ATTEMPT_TEXT_MAX],
        duration=result.duration or 0.0,
        category=outcome.category or "",
        action=outcome.action or "",
        possible_duplicate=message.outcome_unknown,  # an earlier attempt may have reached the receiver
    )


def _event_data(result):
    if result is None:
        return {}
    return {"code": result.code, "enhanced": result.enhanced, "mx_host": result.mx_host, "source_ip": result.source_ip}


def _record_ip_outcomes(batch, rows):
    """Tell ippools per (source IP, provider) how it went: warm-up and reputation counts, and deliveries that
    ease a slowed pair (a pair rate limited in this batch was slowed already, in `send`)."""
    if not rows:
        return
    provider = batch.provider
    counts = {}
    for message in rows:
        if message.source_ip is None or message.status == MessageStatus.SUPPRESSED:
            continue
        bucket = counts.setdefault(message.source_ip, {"delivered": 0, "bounced": 0, "deferred": 0})
        if message.status == MessageStatus.DELIVERED:
            bucket["delivered"] += 1
        elif message.status == MessageStatus.BOUNCED:
            bucket["bounced"] += 1
        elif message.status in (MessageStatus.DEFERRED, MessageStatus.EXPIRED):
            bucket["deferred"] += 1
    for ip, bucket in counts.items():
        try:
            ip_services.record_outcomes(ip, provider, **bucket)
            if ip.pk not in batch.rate_limited and bucket["delivered"]:
                ip_services.record_successes(ip, provider, bucket["delivered"])
        except Exception:  # statistics must never fail a delivered batch
            logger.exception("Recording outcomes for %s/%s failed", ip, provider)


# ---------------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------------

STEPS = [check_suppression, check_domain, check_limits, resolve_destination, sign, send, settle, finish]


def load(ids):
    """The claimed messages with their content, domain and source IP, each loaded once per batch, not per row.

    Recipients of one message share its content (up to MESSAGE_MAX_BYTES): joining it to every row would read
    the body once per recipient, so each distinct content is read once and the rows share the instance.
    """
    messages = list(Message.objects.filter(id__in=ids).order_by("priority", "id"))
    contents = MessageContent.objects.in_bulk({m.content_id for m in messages})
    domains = SendingDomain.objects.in_bulk({m.sending_domain_id for m in messages})
    ips = IPAddress.objects.select_related("node").in_bulk({m.source_ip_id for m in messages if m.source_ip_id})
    for message in messages:
        message.content = contents[message.content_id]
        message.sending_domain = domains[message.sending_domain_id]
        if message.source_ip_id:
            message.source_ip = ips[message.source_ip_id]
    return messages


def process(token, ids):
    """Run the claimed messages `ids` (leased by `token`) through STEPS; returns the rows whose outcome was written.

    Every step but the last may end the batch early (`StopProcessing`); `finish`, the last, always runs. The RQ job
    timing out (it should not: no transaction starts past DELIVERY_BATCH_SECONDS, and the job timeout is longer than
    that plus the longest transaction the stage timeouts allow) is not a poison message: what the receiver accepted
    is recorded, and the rest goes back unchanged — flagged as a possible duplicate where it was on the wire.
    """
    started = time.monotonic()
    batch = Batch(token=token, items=[Item(m) for m in load(ids)], deadline=started + settings.DELIVERY_BATCH_SECONDS,
                  renew_at=started + settings.DELIVERY_LEASE_SECONDS / 3)  # fmt: skip
    if not batch.items:
        return []
    batch.rules = _admin_rules(batch.items[0].message.tenant_id)
    *steps, last = STEPS
    try:
        for step in steps:
            step(batch)
    except StopProcessing as exc:
        logger.debug("Batch %s: %s", token, exc)
    except JobTimeoutException:
        logger.warning("Batch %s: the job timed out; recording what was accepted, giving the rest back", token)
        for item in batch.open():
            detail = "The batch job timed out: rescheduled."
            if item.handed:
                detail = "The batch job timed out during the SMTP transaction (the message may have been delivered)."
            item.outcome = Outcome(RELEASE, detail, unknown=item.handed)
    except Exception as exc:  # an error of the whole batch (DNS library, pool): defer what is still open
        logger.exception("Batch %s failed", token)
        for item in batch.open():
            item.outcome = Outcome(
                MessageStatus.DEFERRED, f"Processing error: {type(exc).__name__}: {exc}",
                retry_at=batch.now + timezone.timedelta(seconds=POISON_RETRY_SECONDS), event=EventKind.ERROR,
                unknown=item.handed,
            )  # fmt: skip
    return last(batch)


def _admin_rules(tenant_id):
    """The tenant's and the global enabled bounce rules, tenant rules first, as the classifier's extra rules."""
    rules = list(BounceRule.objects.filter(enabled=True, tenant_id__in=[tenant_id]).order_by("priority", "pk"))
    rules += list(BounceRule.objects.filter(enabled=True, tenant__isnull=True).order_by("priority", "pk"))
    return rules
