"""Throttling per (source IP, provider): admins' rules and adaptive slow-down (Redis state, see ippools/throttle.py)."""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .. import counters, throttle
from ..choices import IPEventKind, Provider
from ..models import IPEvent, IPPoolMember, ThrottleRule, ThrottleState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairLimits:
    """What one batch from a source IP to a provider may do now."""

    connections: int  # SMTP connections at once
    messages_per_connection: int | None  # None: the engine's default
    suspended_until: object = None  # an aware datetime while the pair is suspended, else None
    level: int = 0  # halvings in force
    # Held at send time across the node's workers (queues.delivery.limits): connections open at once from the IP to
    # the provider (a rule's max_connections, halved per level; None: no rule), and the rules' message rates as
    # (name, messages, per seconds), halved per level.
    node_connections: int | None = None
    rates: tuple = ()


def throttle_rules(tenant_id, provider, ip_ids):
    """{ip id: [enabled ThrottleRule]} matching mail of `tenant_id` from each IP to `provider`: platform rules and
    the tenant's own, for the IP itself, a pool it is a member of, or every IP; for the provider or any."""
    rules = list(
        ThrottleRule.objects.filter(enabled=True, provider__in=["", provider]).filter(
            Q(tenant__isnull=True) | Q(tenant_id=tenant_id)
        )
    )
    ip_ids = list(ip_ids)
    if not rules:
        return {ip_id: [] for ip_id in ip_ids}
    pool_ids = {rule.pool_id for rule in rules if rule.pool_id}
    members = set()
    if pool_ids:
        members = IPPoolMember.objects.filter(pool_id__in=pool_ids, ip_id__in=ip_ids)
        members = set(members.values_list("pool_id", "ip_id"))
    return {
        ip_id: [
            rule for rule in rules
            if rule.ip_id == ip_id or (rule.pool_id, ip_id) in members or (rule.ip_id is None and rule.pool_id is None)
        ]
        for ip_id in ip_ids
    }  # fmt: skip


def pair_state(ip_id, provider, *, client=None):
    """The adaptive state of an (IP, provider) pair; Redis re-seeded from `ThrottleState` when it lost the pair."""
    client = client or counters.get_redis()
    state = throttle.read(client, ip_id, provider)
    if state is None:
        throttle.seed(client, ip_id, provider, ThrottleState.objects.filter(ip_id=ip_id, provider=provider).first())
        state = throttle.read(client, ip_id, provider) or throttle.PairState()
    return state


def pair_limits(ip, provider, *, tenant_id=None, connections, now=None):
    """The limits of the next batch from `ip` to `provider`: `connections` (the engine's default) lowered by the
    matching throttle rules and halved per slow-down level (at least 1); whether the pair is suspended."""
    now = now or timezone.now()
    ip_id = getattr(ip, "pk", ip)
    provider = provider if provider in Provider.values else Provider.OTHER
    state = pair_state(ip_id, provider)
    rules = throttle_rules(tenant_id, provider, [ip_id])[ip_id]
    base = min([connections, *(rule.max_connections for rule in rules if rule.max_connections)])
    per_connection = min((r.max_messages_per_connection for r in rules if r.max_messages_per_connection), default=None)
    limited = [rule.max_connections for rule in rules if rule.max_connections]
    rates = tuple(
        (f"{rule.pk}{suffix}", state.scale(count), seconds)
        for rule in rules
        for suffix, count, seconds in (("m", rule.max_per_minute, 60), ("h", rule.max_per_hour, 3600))
        if count
    )
    return PairLimits(
        connections=state.scale(base),
        messages_per_connection=per_connection,
        suspended_until=state.until_datetime if state.suspended(now) else None,
        level=state.level,
        node_connections=state.scale(min(limited)) if limited else None,
        rates=rates,
    )


def rate_limited(ip, provider, *, reply="", hint=None, now=None):
    """A receiver of `provider` answered `ip` with a rate-limit reply: halve the pair's speed and suspend it (see
    throttle.py). Replies of the same incident (while suspended) change nothing. Returns the pair's state."""
    now = now or timezone.now()
    ip_id = getattr(ip, "pk", ip)
    provider = provider if provider in Provider.values else Provider.OTHER
    client = counters.get_redis()
    pair_state(ip_id, provider, client=client)
    hint = max(int(hint or 0), throttle.suspension_for(provider, reply))  # Yahoo's TS04 asks for hours
    changed, state = throttle.slow(client, ip_id, provider, now=now, hint=hint)
    if changed:
        wait = state.until - int(now.timestamp())
        message = (
            f"Rate limited by {Provider(provider).label}: slowed to 1/{2**state.level} of full speed and suspended for "
            f"{wait} s, until {state.until_datetime:%Y-%m-%d %H:%M:%S} UTC."
        )
        _record_throttle(ip_id, provider, state, IPEventKind.THROTTLE_SLOWED, message, reply, now)
    return state


def record_successes(ip, provider, count, *, now=None):
    """`count` messages from `ip` to `provider` were delivered: a slowed pair eases one level per
    THROTTLE_RESTORE_AFTER deliveries in a row. Returns the pair's state."""
    now = now or timezone.now()
    ip_id = getattr(ip, "pk", ip)
    provider = provider if provider in Provider.values else Provider.OTHER
    client = counters.get_redis()
    state = pair_state(ip_id, provider, client=client)
    if state.level == 0 or count <= 0:
        return state
    changed, state = throttle.succeed(client, ip_id, provider, count, now=now)
    if changed:
        name = Provider(provider).label
        if state.level == 0:
            kind, message = IPEventKind.THROTTLE_RESTORED, f"Deliveries to {name} succeed again: back to full speed."
        else:
            kind = IPEventKind.THROTTLE_EASED
            message = f"Deliveries to {name} succeed again: eased to 1/{2**state.level} of full speed."
        _record_throttle(ip_id, provider, state, kind, message, "", now)
    return state


def _record_throttle(ip_id, provider, state, kind, message, reason, now):
    """The durable copy of a pair's transition and its IP event (not an audit entry: no configuration changed)."""
    try:
        with transaction.atomic():
            ThrottleState.objects.update_or_create(
                ip_id=ip_id, provider=provider,
                defaults={"level": state.level, "suspended_until": state.until_datetime, "reason": reason[:500],
                          "backoff_seconds": state.backoff, "updated": now},
            )  # fmt: skip
            data = {"provider": provider, "level": state.level, "backoff": state.backoff, "reply": reason[:500]}
            if state.until:
                data["until"] = state.until_datetime.isoformat()
            IPEvent.objects.create(ip_id=ip_id, kind=kind, message=message, data=data, time=now)
    except IntegrityError:  # the IP was deleted meanwhile: Redis keeps the state until it expires
        logger.warning("Could not record throttle state of IP %s / %s", ip_id, provider)
