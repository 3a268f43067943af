"""
The audit log: who did what, from where, to which object, with before/after values.

CRUD on `ChangeLoggedModel`s is logged automatically (`log_change`, called from the model's save and
delete); services log their verbs explicitly with `record()`. The request context (request id, actor,
client address) travels in a context variable set by `RequestIDMiddleware`, by API authentication, or
by `audit_context()` in commands and jobs.

Who acted: services take a keyword-only `acting_user` (a user, an API key or a `Principal`) and run their
body inside `with audit.acting_as(acting_user):`, so that every entry they write — their verb entries and the
automatic CRUD entries of the rows they save — names that actor. `acting_user=None` keeps the context's actor:
the request's user or key (set by the middleware and API authentication), the job's requester (set by the job
runner), or "system" in the scheduler. One way everywhere: a service that writes audit entries takes
`acting_user` and uses it this way; a function that writes none does not take it.

Every entry is chained: it stores the previous entry's hash and a SHA-256 over its own canonical
content. Writers lock the single `AuditChainHead` row, so concurrent writers still form one chain.
"""

import contextvars
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace

from django.db import IntegrityError, transaction
from django.utils import timezone

from .choices import ActorType
from .constants import AUDIT_GENESIS_HASH


@dataclass(frozen=True)
class AuditContext:
    request_id: str = ""
    principal: object = None  # a permissions.Principal, or None for the system
    client_ip: str | None = None
    tenant_id: int | None = None  # fallback tenant for entries whose object has none


_context = contextvars.ContextVar("deliveryhub_audit_context", default=AuditContext())


def current_context():
    return _context.get()


def set_context(**changes):
    """Change fields of the current context (e.g. the actor once API authentication succeeded)."""
    _context.set(replace(_context.get(), **changes))


@contextmanager
def audit_context(*, principal=None, request_id=None, client_ip=None, tenant_id=None):
    """Run a block (a command, a job) with the given actor and a request id."""
    token = _context.set(
        AuditContext(
            request_id=request_id or uuid.uuid4().hex,
            principal=principal,
            client_ip=client_ip,
            tenant_id=tenant_id,
        )
    )
    try:
        yield _context.get()
    finally:
        _context.reset(token)


@contextmanager
def acting_as(actor):
    """Run a block (a service's body) with `actor` as the audit actor; None keeps the context's actor."""
    if actor is None:
        yield _context.get()
        return
    from .permissions import Principal

    token = _context.set(replace(_context.get(), principal=Principal.of(actor)))
    try:
        yield _context.get()
    finally:
        _context.reset(token)


def object_type_of(obj):
    return f"{obj._meta.app_label}.{obj._meta.model_name}"


def object_repr(obj, default=""):
    """The frozen name of an entry's object: personal values (PersonalDataMixin) appear as their pseudonyms."""
    from .models import PersonalDataMixin

    if obj is None:
        return default
    return obj.audit_repr() if isinstance(obj, PersonalDataMixin) else str(obj)


def _actor_fields(principal):
    if principal is None:
        return ActorType.SYSTEM, "", "system"
    if getattr(principal, "api_key", None) is not None:
        return ActorType.API_KEY, str(principal.api_key.pk), principal.name
    if getattr(principal, "user", None) is not None:
        return ActorType.USER, str(principal.user.pk), principal.name
    return ActorType.ANONYMOUS, "", "anonymous"


def record(action, *, obj=None, tenant=None, prechange=None, postchange=None, message="", actor=None, **extra):
    """Append one entry to the audit chain, inside the caller's transaction (or its own).

    `actor` overrides the context's principal (a user, an API key or a Principal), e.g. for a sign-in
    before the session exists; `extra` may carry `actor_name` for an unknown user name.
    """
    from .models import AuditEntry
    from .permissions import Principal

    ctx = current_context()
    principal = Principal.of(actor) if actor is not None else ctx.principal
    actor_type, actor_id, actor_name = _actor_fields(principal)
    if actor is not None and not getattr(principal, "is_authenticated", True):
        actor_type, actor_id, actor_name = ActorType.ANONYMOUS, "", extra.get("actor_name", "")
    if tenant is None and obj is not None:
        tenant_id = getattr(obj, "tenant_id", None)
    else:
        tenant_id = getattr(tenant, "pk", tenant)
    if tenant_id is None:
        tenant_id = ctx.tenant_id

    with transaction.atomic():
        head = _locked_head()
        entry = AuditEntry(
            seq=head.seq + 1,
            time=timezone.now(),
            tenant_id=tenant_id,
            actor_type=actor_type,
            actor_id=actor_id,
            actor_name=actor_name[:200],
            request_id=ctx.request_id,
            client_ip=extra.get("client_ip", ctx.client_ip),
            action=action,
            object_type=object_type_of(obj) if obj is not None else extra.get("object_type", ""),
            object_id=str(obj.pk) if obj is not None and obj.pk is not None else extra.get("object_id", ""),
            object_repr=object_repr(obj, extra.get("object_repr", ""))[:200],
            prechange=prechange,
            postchange=postchange,
            message=message,
            prev_hash=head.hash,
        )
        entry.hash = entry.compute_hash()
        entry.save()
        head.seq, head.hash = entry.seq, entry.hash
        head.save(update_fields=["seq", "hash"])
    return entry


def _locked_head():
    """The chain head, locked for this transaction (created on first use, safe against a racing creator)."""
    from .models import AuditChainHead

    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        try:
            with transaction.atomic():
                AuditChainHead.objects.create(pk=1, seq=0, hash=AUDIT_GENESIS_HASH)
        except IntegrityError:
            pass  # another writer created it first
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


def log_change(obj, action, prechange, postchange, **extra):
    """Log a create/update/delete of a ChangeLoggedModel: only the fields that changed, both sides.

    `prechange`/`postchange` are `audit_state()`s (secrets in clear, to see what changed); secrets are
    redacted here, before anything is written: a changed secret is logged as "(secret)" -> "(changed)".
    """
    if action == "update":
        prechange = prechange or {}
        changed = {k for k in postchange if prechange.get(k) != postchange.get(k)}
        if not changed:
            return None
        prechange = obj.redact({k: prechange.get(k) for k in sorted(changed)})
        postchange = obj.redact({k: postchange[k] for k in sorted(changed)}, marker="(changed)")
    else:
        prechange, postchange = obj.redact(prechange), obj.redact(postchange)
    return record(action, obj=obj, prechange=prechange, postchange=postchange, **extra)


# ---------------------------------------------------------------------------------------------------------------------
# User accounts (not ChangeLoggedModels): their creation, changes (superuser flag, password) and deletion are audited
# wherever they happen (services, admin, createsuperuser, changepassword) through signals connected in apps.py.
# ---------------------------------------------------------------------------------------------------------------------

USER_AUDIT_FIELDS = (
    "username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser", "password",
)  # fmt: skip
USER_SECRET_FIELDS = frozenset({"password"})  # a hash, never logged: "(secret)", or "(changed)" when it changed


def _user_state(user):
    return {name: getattr(user, name) for name in USER_AUDIT_FIELDS if hasattr(user, name)}


def _user_redacted(state, marker="(secret)"):
    return {k: (marker if k in USER_SECRET_FIELDS and v else v) for k, v in state.items()}


def user_pre_save(sender, instance, raw=False, update_fields=None, **kwargs):
    """Remember the stored account before a change (sign-ins that only touch last_login are skipped)."""
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & set(USER_AUDIT_FIELDS):
        return
    stored = sender._default_manager.filter(pk=instance.pk).first()
    instance._audit_user_pre = _user_state(stored) if stored is not None else None


def user_post_save(sender, instance, created, raw=False, **kwargs):
    """Log `user.create`, or `user.update` with the fields that changed."""
    if raw:
        return
    if created:
        record("user.create", obj=instance, postchange=_user_redacted(_user_state(instance)))
        return
    pre = instance.__dict__.pop("_audit_user_pre", None)
    if pre is None:
        return
    post = _user_state(instance)
    changed = sorted(k for k in post if pre.get(k) != post[k])
    if changed:
        record(
            "user.update",
            obj=instance,
            prechange=_user_redacted({k: pre.get(k) for k in changed}),
            postchange=_user_redacted({k: post[k] for k in changed}, marker="(changed)"),
        )


def user_post_delete(sender, instance, **kwargs):
    record("user.delete", obj=instance, prechange=_user_redacted(_user_state(instance)))


@dataclass
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""

    def __str__(self):
        if self.ok:
            return f"Audit chain intact: {self.checked} entries verified."
        return f"Audit chain BROKEN at entry #{self.first_bad_seq}: {self.reason} ({self.checked} entries checked)."


def verify_chain(chunk_size=2000):
    """Walk the whole chain in order and report the first entry that was edited, removed or reordered."""
    from .models import AuditChainHead, AuditEntry

    expected_prev = AUDIT_GENESIS_HASH
    expected_seq = 1
    checked = 0
    last_seq = 0
    while True:
        chunk = list(AuditEntry.objects.filter(seq__gt=last_seq).order_by("seq")[:chunk_size])
        if not chunk:
            break
        for entry in chunk:
            checked += 1
            if entry.seq != expected_seq:
                return ChainReport(False, checked, expected_seq, f"entry #{expected_seq} is missing")
            if entry.prev_hash != expected_prev:
                return ChainReport(False, checked, entry.seq, "it does not link to the entry before it")
            if entry.compute_hash() != entry.hash:
                return ChainReport(False, checked, entry.seq, "its content does not match its hash")
            expected_prev = entry.hash
            expected_seq += 1
            last_seq = entry.seq
    head = AuditChainHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, AUDIT_GENESIS_HASH)
    if head_seq != last_seq or head_hash != expected_prev:
        reason = f"entries after #{last_seq} were removed (head is #{head_seq})"
        return ChainReport(False, checked, last_seq + 1, reason)
    return ChainReport(True, checked)
