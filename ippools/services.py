"""
Verbs of the IP pools app: node heartbeats, pool membership and grants, warm-up steps, blocklist checks,
reputation, and the delivery engine's two entry points: `select_source_ip()` and `record_outcomes()`.

Every verb that changes configuration is atomic, takes keyword-only `acting_user`, and writes its audit
entry in the same transaction; signals for other apps are sent after commit.
"""

import ipaddress
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import date as date_type

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from deliveryhub import audit

from . import counters, dnsbl, signals, throttle
from .choices import (
    IP_EVENT_AUDIT_ACTIONS,
    SENDING_IP_STATES,
    BlocklistKind,
    IPEventKind,
    IPState,
    ListingStatus,
    PoolPurpose,
    Provider,
)
from .constants import (
    HOURLY_KEY_TTL_SECONDS,
    RATE_HOUR_KEY_TTL_SECONDS,
    RATE_KEY_PREFIX,
    RATE_MINUTE_KEY_TTL_SECONDS,
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
    TOTAL,
    USAGE_DIRTY_SET_PREFIX,
    USAGE_KEY_TTL_SECONDS,
    WARMUP_SEVERE_FACTOR,
)
from .models import (
    BlocklistCheck,
    DeliveryNode,
    IPAddress,
    IPDailyUsage,
    IPEvent,
    IPPool,
    IPPoolGrant,
    IPPoolMember,
    ReputationSample,
    TenantDefaultPool,
    ThrottleRule,
    ThrottleState,
)

logger = logging.getLogger(__name__)

LOCAL_NODE_NAME = "local"
LOCAL_IP = "127.0.0.1"
DEFAULT_POOL_NAME = "default"


# ---------------------------------------------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------------------------------------------


def heartbeat(node_name, *, now=None):
    """Mark a node alive (called by its workers); a node not yet known is registered, active, with no IPs."""
    now = now or timezone.now()
    if DeliveryNode.objects.filter(name=node_name).update(last_heartbeat=now):
        return
    with transaction.atomic():
        node, _ = DeliveryNode.objects.get_or_create(name=node_name)
        DeliveryNode.objects.filter(pk=node.pk).update(last_heartbeat=now)


@transaction.atomic
def ensure_local_node(*, acting_user=None, now=None):
    """The demo/dev stack's sending setup: node "local" with IP 127.0.0.1 in the shared pool "default"
    (transactional, open to every tenant). Idempotent; returns (node, ip, pool)."""
    node, _ = DeliveryNode.objects.get_or_create(name=LOCAL_NODE_NAME, defaults={"hostname": "localhost"})
    ip = IPAddress.objects.filter(address=LOCAL_IP).first()
    if ip is None:
        ip = IPAddress(address=LOCAL_IP, node=node, ehlo_hostname="localhost", notes="Created by ensure_local_node.")
        ip.full_clean()
        ip.save()
    pool, _ = IPPool.objects.get_or_create(
        name=DEFAULT_POOL_NAME,
        defaults={
            "purpose": PoolPurpose.TRANSACTIONAL,
            "all_tenants": True,
            "description": "Shared pool of the local node (created by ensure_local_node).",
        },
    )
    if not IPPoolMember.objects.filter(pool=pool, ip=ip).exists():
        assign_ip(pool, ip, acting_user=acting_user)
    heartbeat(node.name, now=now)
    return node, ip, pool


# ---------------------------------------------------------------------------------------------------------------------
# Pools
# ---------------------------------------------------------------------------------------------------------------------


@transaction.atomic
def assign_ip(pool, ip, *, weight=100, acting_user=None):
    """Put an IP in a pool with a rotation weight (or change its weight)."""
    member = IPPoolMember.objects.filter(pool=pool, ip=ip).first() or IPPoolMember(pool=pool, ip=ip)
    member.weight = weight
    member.full_clean()
    member.save()
    return member


@transaction.atomic
def remove_ip(pool, ip, *, acting_user=None):
    """Take an IP out of a pool."""
    for member in IPPoolMember.objects.filter(pool=pool, ip=ip):
        member.delete()


@transaction.atomic
def grant_pool(pool, tenant, *, acting_user=None):
    """Let a tenant use a shared pool."""
    grant = IPPoolGrant.objects.filter(pool=pool, tenant=tenant).first()
    if grant is None:
        grant = IPPoolGrant(pool=pool, tenant=tenant)
        grant.full_clean()
        grant.save()
    return grant


@transaction.atomic
def revoke_pool_grant(pool, tenant, *, acting_user=None):
    for grant in IPPoolGrant.objects.filter(pool=pool, tenant=tenant):
        grant.delete()


@transaction.atomic
def set_default_pool(tenant, purpose, pool, *, acting_user=None):
    """Make `pool` the tenant's default for mail of `purpose` (the pool must be usable by the tenant)."""
    default = TenantDefaultPool.objects.filter(tenant=tenant, purpose=purpose).first()
    default = default or TenantDefaultPool(tenant=tenant, purpose=purpose)
    default.pool = pool
    default.full_clean()
    default.save()
    return default


def default_pool_for(tenant, purpose=PoolPurpose.TRANSACTIONAL):
    """The pool a tenant's mail of `purpose` uses when none is named: its chosen default, else a usable pool of
    that purpose (dedicated before shared), else None."""
    chosen = TenantDefaultPool.objects.filter(tenant=tenant, purpose=purpose).select_related("pool").first()
    if chosen is not None and chosen.pool.is_usable_by(tenant):
        return chosen.pool
    usable = IPPool.objects.usable_by(tenant).filter(purpose=purpose)
    return usable.filter(tenant=tenant).order_by("name").first() or usable.order_by("name").first()


@transaction.atomic
def pause_ip(ip, *, reason="", acting_user=None):
    """Take an IP out of every pool's rotation (state `paused`)."""
    return _set_state(ip, IPState.PAUSED, IPEventKind.PAUSED, reason or "paused by an admin")


@transaction.atomic
def resume_ip(ip, *, acting_user=None):
    """Put a paused IP back: `warming` if it is on a plan, else `active`."""
    state = IPState.WARMING if ip.warmup_plan_id and not _warmup_done(ip) else IPState.ACTIVE
    return _set_state(ip, state, IPEventKind.RESUMED, "resumed by an admin")


def _warmup_done(ip):
    return ip.warmup_plan is not None and ip.warmup_day > ip.warmup_plan.length


def _set_state(ip, state, kind, message):
    ip.state = state
    ip.full_clean()
    ip.save()
    _ip_event(ip, kind, message)
    return ip


# ---------------------------------------------------------------------------------------------------------------------
# Source-IP selection (the delivery engine's entry point)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The IP chosen for the next batch, how many sends were reserved against its caps, and the (IP, provider)
    pair's state when chosen (halvings in force)."""

    ip: IPAddress
    reserved: int
    provider: str = Provider.OTHER
    level: int = 0


class NoCapacity(Exception):
    """No usable IP can take more mail now; `until` says when capacity frees (None: not by itself)."""

    def __init__(self, reason, until=None):
        self.reason = reason
        self.until = until
        super().__init__(f"{reason} (until {until.isoformat()})" if until else reason)


def select_source_ip(*, tenant, pool, provider, region=None, count=1, now=None, node=None, rng=None, cache=None):
    """Choose the source IP for the next batch of `count` messages to `provider` and reserve them.

    Weighted rotation over the pool's usable IPs (member not paused, IP active or warming, owned by a live
    node, in `region` and on `node` when given) whose (IP, provider) pair is not suspended (adaptive throttling)
    and that still have capacity for this provider: the per-minute/hour limits of their throttle rules (halved
    while the pair is slowed) and their warm-up caps today. Reservation is a Redis INCRBY per counter (the atomic
    gate); a missing warm-up counter is re-seeded from the database first. May reserve fewer than `count` when an
    IP has less left. Raises `NoCapacity(reason, until)` when nothing can send, and `IPPool.DoesNotExist` when the
    tenant may not use the pool.

    `cache`: a dict the caller keeps for one scheduling run of many batches, so that the pool, its usable members
    and the throttle rules are read from the database once per run rather than once per batch (capacity is still
    reserved per batch, in Redis). What an admin changes applies from the next run.
    """
    now = now or timezone.now()
    rng = rng or random
    cache = {} if cache is None else cache
    provider = provider if provider in Provider.values else Provider.OTHER
    pool_id = getattr(pool, "pk", pool)
    tenant_id = getattr(tenant, "pk", tenant)
    if ("pool", tenant_id, pool_id) not in cache:
        cache["pool", tenant_id, pool_id] = IPPool.objects.usable_by(tenant).filter(pk=pool_id).first()
    pool = cache["pool", tenant_id, pool_id]
    if pool is None:
        raise IPPool.DoesNotExist(f"IP pool {pool_id} does not exist or is not usable by this tenant.")
    region = region or pool.region or None
    members_key = ("members", pool.pk, region, getattr(node, "name", node))
    if members_key not in cache:
        try:
            cache[members_key] = _usable_members(pool, region=region, node=node, now=now)
        except NoCapacity as exc:
            cache[members_key] = (exc.reason, exc.until)
    members = cache[members_key]
    if isinstance(members, tuple):
        raise NoCapacity(*members)
    client = counters.get_redis()
    rules_key = ("rules", tenant_id, provider, *members_key[1:])
    if rules_key not in cache:
        cache[rules_key] = throttle_rules(tenant_id, provider, [m.ip_id for m in members])
    rules = cache[rules_key]
    suspended, limited, capped = [], [], []  # when each kind of "not now" frees
    for member in _weighted_order(members, rng):
        state = pair_state(member.ip_id, provider, client=client)
        if state.suspended(now):
            suspended.append(state.until_datetime)
            continue
        wanted, taken, until = _reserve_rates(client, rules[member.ip_id], member.ip_id, provider, count, state, now)
        if not wanted:
            limited.append(until)
            continue
        reserved, until = _reserve(client, member.ip, provider, wanted, now)
        for key, amount in taken:
            counters.give_back(client, key, amount - reserved)
        if reserved:
            return Selection(ip=member.ip, reserved=reserved, provider=provider, level=state.level)
        capped.append(until)
    name = Provider(provider).label
    if suspended and not (limited or capped):
        until = min(suspended)
        raise NoCapacity(
            f"Rate limited by {name} until {until:%Y-%m-%d %H:%M:%S} UTC on every usable IP of pool {pool}.", until
        )
    if limited and not (suspended or capped):
        raise NoCapacity(f"Every usable IP of pool {pool} reached its throttle rules' rate for {name}.", min(limited))
    if capped and not (suspended or limited):
        raise NoCapacity(f"Every usable IP of pool {pool} reached its warm-up cap for {provider}.", until=min(capped))
    raise NoCapacity(
        f"No usable IP of pool {pool} may send to {name} now: {len(suspended)} rate limited by {name}, "
        f"{len(limited)} at a throttle rule's rate, {len(capped)} at the warm-up cap.",
        until=min(suspended + limited + capped),
    )


def _usable_members(pool, *, region, node, now):
    members = list(IPPoolMember.objects.filter(pool=pool).select_related("ip__node", "ip__warmup_plan"))
    if not members:
        raise NoCapacity(f"Pool {pool} has no IP addresses.")
    usable = [m for m in members if not m.paused]
    if not usable:
        raise NoCapacity(f"Every IP of pool {pool} is paused in it ({members[0].pause_reason or 'by an admin'}).")
    usable = [m for m in usable if m.ip.state in SENDING_IP_STATES]
    if not usable:
        raise NoCapacity(f"No IP of pool {pool} is active or warming (paused, blocked or retired).")
    if node is not None:
        node_name = getattr(node, "name", node)
        usable = [m for m in usable if m.ip.node.name == node_name]
        if not usable:
            raise NoCapacity(f"Node {node_name} owns no usable IP of pool {pool}.")
    if region:
        usable = [m for m in usable if m.ip.node.region == region]
        if not usable:
            raise NoCapacity(f"No usable IP of pool {pool} is on a node in region {region}.")
    usable = [m for m in usable if m.ip.node.is_live(now)]
    if not usable:
        raise NoCapacity(f"No node owning an IP of pool {pool} is live (no recent heartbeat).")
    return usable


def _weighted_order(members, rng):
    """A random order where each member comes first with probability weight / total (Efraimidis-Spirakis)."""
    return sorted(members, key=lambda m: rng.random() ** (1.0 / max(m.weight, 1)), reverse=True)


def _seed_daily(client, ip, day, provider, key):
    """Create a missing daily counter from the database: reservations or recorded outcomes, whichever is more."""
    if client.exists(key):
        return
    rows = IPDailyUsage.objects.filter(ip=ip, date=day)
    if provider != TOTAL:
        rows = rows.filter(provider=provider)
    value = 0
    for row in rows:
        value += max(row.reserved, row.delivered + row.bounced + row.deferred)
    counters.seed(client, key, value, USAGE_KEY_TTL_SECONDS)


def _reserve(client, ip, provider, wanted, now):
    """Reserve up to `wanted` sends on `ip` for `provider` today: (reserved, None) or (0, when capacity frees)."""
    day = ip.local_date(now)
    caps = ip.warmup_caps() or {}
    gates = []  # (key, cap or None, when it frees)
    for name in (provider, TOTAL):
        key = counters.daily_key(ip.pk, day, name)
        _seed_daily(client, ip, day, name, key)
        gates.append((key, caps.get(name), ip.next_local_midnight(now)))
    if caps.get("hourly") is not None:
        local = now.astimezone(ip.time_zone)
        key = counters.hourly_key(ip.pk, day, local.hour, provider)
        counters.seed(client, key, 0, HOURLY_KEY_TTL_SECONDS)
        next_hour = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        gates.append((key, caps["hourly"], next_hour))

    granted = wanted
    taken = []  # (key, amount) to give back if a later gate grants less
    for key, cap, frees_at in gates:
        if cap is None:
            client.incrby(key, granted)
            got = granted
        else:
            got = counters.take(client, key, granted, cap)
        for earlier_key, amount in taken:
            counters.give_back(client, earlier_key, amount - got)
        taken = [(k, got) for k, _ in taken] + [(key, got)]
        granted = got
        if not granted:
            return 0, frees_at
    client.sadd(counters.dirty_set(day), *(key for key, _, _ in gates[:1]))
    return granted, None


def _reserve_rates(client, rules, ip_id, provider, wanted, state, now):
    """Take up to `wanted` from the per-minute/hour counters of the IP's throttle rules (limits scaled down by the
    pair's state): (granted, [(key, granted)] to give back from, when capacity frees if nothing was granted)."""
    gates = []
    minute, hour = int(now.timestamp()) // 60, int(now.timestamp()) // 3600
    for rule in rules:
        if rule.max_per_minute:
            key = f"{RATE_KEY_PREFIX}{rule.pk}:{ip_id}:{provider}:m{minute}"
            gates.append((key, state.scale(rule.max_per_minute), RATE_MINUTE_KEY_TTL_SECONDS, (minute + 1) * 60))
        if rule.max_per_hour:
            key = f"{RATE_KEY_PREFIX}{rule.pk}:{ip_id}:{provider}:h{hour}"
            gates.append((key, state.scale(rule.max_per_hour), RATE_HOUR_KEY_TTL_SECONDS, (hour + 1) * 3600))
    granted, taken = wanted, []
    for key, cap, ttl, frees_at in gates:
        got = counters.take(client, key, granted, cap)
        client.expire(key, ttl)
        for earlier_key, amount in taken:
            counters.give_back(client, earlier_key, amount - got)
        taken = [(k, got) for k, _ in taken] + [(key, got)]
        granted = got
        if not granted:
            return 0, [], datetime.fromtimestamp(frees_at, tz=UTC)
    return granted, taken, None


def flush_usage():
    """Write the Redis reservation counters of changed keys into `IPDailyUsage` (never lowering a count).
    Returns how many counters were written."""
    client = counters.get_redis()
    written = 0
    for dirty in client.scan_iter(match=f"{USAGE_DIRTY_SET_PREFIX}*"):
        keys = client.spop(dirty, 10_000) or []
        ip_ids = set()
        parsed = []
        for key in keys:
            parts = counters.parse_daily_key(key)
            if parts is None:
                continue
            value = client.get(key)
            if value is None:
                continue
            parsed.append((*parts, int(value)))
            ip_ids.add(parts[0])
        existing = set(IPAddress.objects.filter(pk__in=ip_ids).values_list("pk", flat=True))
        for ip_id, day, provider, value in parsed:
            if ip_id not in existing:
                continue
            row, _ = _usage_row(ip_id, date_type.fromisoformat(day), provider)
            IPDailyUsage.objects.filter(pk=row.pk).update(reserved=Greatest(F("reserved"), value))
            written += 1
    return written


def _usage_row(ip_id, day, provider):
    try:
        with transaction.atomic():
            return IPDailyUsage.objects.get_or_create(ip_id=ip_id, date=day, provider=provider)
    except IntegrityError:  # created concurrently
        return IPDailyUsage.objects.get(ip_id=ip_id, date=day, provider=provider), False


def record_outcomes(ip, provider, *, delivered=0, bounced=0, deferred=0, complained=0, now=None):
    """Count outcomes of mail sent from `ip` to `provider` on the IP's local day: the warm-up's and the
    reputation's evidence. Called by the delivery engine after each batch (and by bounce/FBL processing)."""
    now = now or timezone.now()
    provider = provider if provider in Provider.values else Provider.OTHER
    ip_id = getattr(ip, "pk", ip)
    if not isinstance(ip, IPAddress):
        ip = IPAddress.objects.get(pk=ip_id)
    row, _ = _usage_row(ip_id, ip.local_date(now), provider)
    IPDailyUsage.objects.filter(pk=row.pk).update(
        delivered=F("delivered") + delivered,
        bounced=F("bounced") + bounced,
        deferred=F("deferred") + deferred,
        complained=F("complained") + complained,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Throttling per (source IP, provider): admins' rules and adaptive slow-down (Redis state, see throttle.py)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairLimits:
    """What one batch from a source IP to a provider may do now."""

    connections: int  # SMTP connections at once
    messages_per_connection: int | None  # None: the engine's default
    suspended_until: object = None  # an aware datetime while the pair is suspended, else None
    level: int = 0  # halvings in force


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
    return PairLimits(
        connections=state.scale(base),
        messages_per_connection=per_connection,
        suspended_until=state.until_datetime if state.suspended(now) else None,
        level=state.level,
    )


def rate_limited(ip, provider, *, reply="", hint=None, now=None):
    """A receiver of `provider` answered `ip` with a rate-limit reply: halve the pair's speed and suspend it (see
    throttle.py). Replies of the same incident (while suspended) change nothing. Returns the pair's state."""
    now = now or timezone.now()
    ip_id = getattr(ip, "pk", ip)
    provider = provider if provider in Provider.values else Provider.OTHER
    client = counters.get_redis()
    pair_state(ip_id, provider, client=client)
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


def usage_today(ip, now=None):
    """{provider|"total": sends reserved today} for an IP: Redis where it has the counter, else the database."""
    now = now or timezone.now()
    day = ip.local_date(now)
    client = counters.get_redis()
    db = dict(IPDailyUsage.objects.filter(ip=ip, date=day).values_list("provider", "reserved"))
    result = {}
    for name in (*Provider.values, TOTAL):
        value = client.get(counters.daily_key(ip.pk, day, name))
        result[name] = int(value) if value is not None else (sum(db.values()) if name == TOTAL else db.get(name, 0))
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Warm-up
# ---------------------------------------------------------------------------------------------------------------------


@transaction.atomic
def start_warmup(ip, plan, *, day=1, acting_user=None, now=None):
    """Put an IP on a warm-up plan at `day` (state `warming`); its first day is today in its time zone."""
    if not 1 <= day <= plan.length:
        raise ValidationError({"day": f"The plan has days 1 to {plan.length}."})
    ip.warmup_plan, ip.warmup_day, ip.state = plan, day, IPState.WARMING
    ip.warmup_last_step = ip.local_date(now)
    ip.full_clean()
    ip.save()
    message = f"Warm-up started on plan {plan.name}, day {day} of {plan.length}."
    _ip_event(ip, IPEventKind.WARMUP_START, message, {"plan": plan.pk, "day": day}, now=now)
    return ip


def day_outcomes(ip, day):
    """Totals of an IP's recorded outcomes on one local day."""
    totals = IPDailyUsage.objects.filter(ip=ip, date=day).aggregate(
        delivered=Sum("delivered"), bounced=Sum("bounced"), deferred=Sum("deferred"), complained=Sum("complained")
    )
    return {key: value or 0 for key, value in totals.items()}


def outcome_rates(outcomes):
    """(bounce, deferral, complaint) rates: bounces and deferrals per attempt, complaints per delivered message."""
    attempts = outcomes["delivered"] + outcomes["bounced"] + outcomes["deferred"]
    if not attempts:
        return None
    complaint = (
        outcomes["complained"] / outcomes["delivered"] if outcomes["delivered"] else float(outcomes["complained"] > 0)
    )
    return outcomes["bounced"] / attempts, outcomes["deferred"] / attempts, complaint


@transaction.atomic
def step_warmup(ip, *, now=None):
    """Once per local calendar day: advance the IP one day if its last day stayed under the plan's thresholds,
    hold when one was exceeded (or nothing was sent), step back when one was exceeded at least
    WARMUP_SEVERE_FACTOR times. Past the plan's last day the IP becomes `active`. Returns the event or None."""
    ip = IPAddress.objects.select_for_update(of=("self",)).select_related("warmup_plan").get(pk=ip.pk)
    plan = ip.warmup_plan
    if ip.state != IPState.WARMING or plan is None:
        return None
    today = ip.local_date(now)
    if ip.warmup_last_step is None:  # put on a plan without start_warmup(): its first day is today
        IPAddress.objects.filter(pk=ip.pk).update(warmup_last_step=today)
        return None
    if ip.warmup_last_step >= today:
        return None
    last_day = today - timedelta(days=1)
    outcomes = day_outcomes(ip, last_day)
    rates = outcome_rates(outcomes)
    before = ip.warmup_day
    data = {"date": last_day.isoformat(), "outcomes": outcomes, "day_before": before}
    if rates is None:
        kind, message = IPEventKind.WARMUP_HOLD, f"Held at day {before}: no mail was sent on {last_day}."
    else:
        limits = (
            ("bounce rate", rates[0], plan.max_bounce_rate),
            ("deferral rate", rates[1], plan.max_deferral_rate),
            ("complaint rate", rates[2], plan.max_complaint_rate),
        )
        data["rates"] = {name: round(rate, 5) for name, rate, _ in limits}
        exceeded = [(name, rate, limit) for name, rate, limit in limits if rate > limit]
        why = ", ".join(f"{name} {rate:.2%} over {limit:.2%}" for name, rate, limit in exceeded)
        if not exceeded:
            kind = IPEventKind.WARMUP_ADVANCE
            ip.warmup_day = before + 1
            message = f"Advanced to day {ip.warmup_day}: {last_day} stayed under every threshold."
        elif any(rate >= limit * WARMUP_SEVERE_FACTOR for _, rate, limit in exceeded):
            kind = IPEventKind.WARMUP_STEP_BACK
            ip.warmup_day = max(1, before - plan.step_back_days)
            message = f"Stepped back to day {ip.warmup_day} after {last_day}: {why}."
        else:
            kind, message = IPEventKind.WARMUP_HOLD, f"Held at day {before} after {last_day}: {why}."
    if ip.warmup_day > plan.length:
        kind, ip.state, ip.warmup_day = IPEventKind.WARMUP_COMPLETE, IPState.ACTIVE, plan.length
        message = f"Warm-up complete after {plan.length} days: the IP is active without caps."
    ip.warmup_last_step = today
    ip.save()
    data["day_after"] = ip.warmup_day
    event = _ip_event(ip, kind, message, data, now=now)
    day = ip.warmup_day
    transaction.on_commit(lambda: signals.warmup_stepped.send(IPAddress, ip=ip, kind=kind, day=day))
    return event


def step_warmups(now=None):
    """Step every warming IP whose local day has turned (the scheduler runs this every WARMUP_STEP_SECONDS)."""
    events = []
    for ip in IPAddress.objects.filter(state=IPState.WARMING, warmup_plan__isnull=False):
        try:
            event = step_warmup(ip, now=now)
        except Exception:  # one bad IP must not stop the others
            logger.exception("Warm-up step of IP %s failed", ip.pk)
            continue
        if event is not None:
            events.append(event)
    return events


def _ip_event(ip, kind, message, data=None, *, now=None):
    event = IPEvent.objects.create(ip=ip, kind=kind, message=message, data=data or {}, time=now or timezone.now())
    audit.record(IP_EVENT_AUDIT_ACTIONS[kind], obj=ip, message=message)
    return event


# ---------------------------------------------------------------------------------------------------------------------
# Blocklists
# ---------------------------------------------------------------------------------------------------------------------


def _resolver():
    from deliveryhub.dns import make_resolver

    return make_resolver()


def check_blocklists(ip, *, force=False, now=None, acting_user=None, resolver=None):
    """Check an IP against every configured IP blocklist (answers kept for their TTL unless `force`), then
    pause or resume it in its pools on a new listing or a delisting, and recompute its reputation.
    Returns the current BlocklistCheck per zone."""
    now = now or timezone.now()
    resolver = resolver or _resolver()
    results = []
    for zone in dnsbl.configured_zones(BlocklistKind.IP):
        latest = BlocklistCheck.objects.filter(ip=ip, zone=zone.name).order_by("-checked_at", "-id").first()
        if not force and latest is not None and latest.expires_at > now:
            results.append(latest)
            continue
        query_name = dnsbl.ip_query_name(ip.address, zone.query_zone)
        results.append(
            _store_check(
                latest, dnsbl.lookup(resolver, zone, query_name), now, ip=ip, zone=zone.name, query_name=query_name
            )
        )
    apply_listing_state(ip, now=now)
    update_reputation(ip, now=now)
    return results


def check_domain_blocklists(domain, *, force=False, now=None, resolver=None):
    """Check a sending domain against the domain blocklists (Spamhaus DBL by default)."""
    now = now or timezone.now()
    resolver = resolver or _resolver()
    results = []
    for zone in dnsbl.configured_zones(BlocklistKind.DOMAIN):
        latest = BlocklistCheck.objects.filter(ip=None, domain=domain, zone=zone.name).order_by("-checked_at").first()
        if not force and latest is not None and latest.expires_at > now:
            results.append(latest)
            continue
        query_name = dnsbl.domain_query_name(domain, zone.query_zone)
        result = dnsbl.lookup(resolver, zone, query_name)
        check = _store_check(latest, result, now, domain=domain, zone=zone.name, query_name=query_name)
        if check.status == ListingStatus.LISTED and (latest is None or latest.status != ListingStatus.LISTED):
            audit.record(
                "domain.listed",
                object_type="domains.sendingdomain",
                object_repr=domain,
                message=f"{domain} is listed on {zone.name}: {check.meaning}",
            )
        results.append(check)
    return results


def _store_check(latest, result, now, **fields):
    """Extend the latest row when the answer is unchanged, else start a new one (the history)."""
    if result.status == ListingStatus.UNKNOWN:
        keep = settings.BLOCKLIST_RETRY_SECONDS
    else:
        keep = min(max(result.ttl or 0, settings.BLOCKLIST_MIN_CACHE_SECONDS), settings.BLOCKLIST_MAX_CACHE_SECONDS)
    expires = now + timedelta(seconds=keep)
    codes = list(result.codes)
    if latest is not None and latest.status == result.status and latest.codes == codes:
        latest.checked_at, latest.expires_at, latest.meaning = now, expires, result.meaning
        latest.attempts += 1
        latest.save(update_fields=["checked_at", "expires_at", "meaning", "attempts"])
        return latest
    return BlocklistCheck.objects.create(
        status=result.status,
        codes=codes,
        meaning=result.meaning,
        first_seen=now,
        checked_at=now,
        expires_at=expires,
        **fields,
    )


def listing_zones(ip):
    """Zones whose last conclusive answer (listed or clear; not error/unknown) lists the IP."""
    zones = []
    known = BlocklistCheck.objects.filter(ip=ip, status__in=[ListingStatus.LISTED, ListingStatus.CLEAR])
    for zone in sorted(set(known.values_list("zone", flat=True))):
        last = known.filter(zone=zone).order_by("-checked_at", "-id").first()
        if last.status == ListingStatus.LISTED:
            zones.append(zone)
    return zones


@transaction.atomic
def apply_listing_state(ip, *, now=None):
    """Mirror the IP's listings on it; a new listing pauses it in pools with `pause_on_listing`, the last
    delisting resumes the members that the listing paused. Each is an event and audited."""
    ip = IPAddress.objects.select_for_update().get(pk=ip.pk)
    zones = listing_zones(ip)
    text = ", ".join(zones)[:500]
    before = set(ip.listed_zones.split(", ")) if ip.listed and ip.listed_zones else set()
    new = sorted(set(zones) - before)
    if new:
        IPAddress.objects.filter(pk=ip.pk).update(listed=True, listed_zones=text)
        paused = 0
        reason = f"listed on {text}"[:200]
        for member in IPPoolMember.objects.filter(ip=ip, pool__pause_on_listing=True, paused=False):
            member.paused, member.paused_by_listing, member.pause_reason = True, True, reason
            member.save()
            paused += 1
        message = f"{ip} newly listed on {', '.join(new)}; paused in {paused} pool(s)."
        _ip_event(ip, IPEventKind.LISTED, message, {"zones": zones, "new": new, "paused": paused}, now=now)
        transaction.on_commit(lambda: signals.ip_listed.send(IPAddress, ip=ip, zones=zones))
    elif zones and text != ip.listed_zones:
        IPAddress.objects.filter(pk=ip.pk).update(listed=True, listed_zones=text)
    elif not zones and ip.listed:
        IPAddress.objects.filter(pk=ip.pk).update(listed=False, listed_zones="")
        resumed = 0
        for member in IPPoolMember.objects.filter(ip=ip, paused_by_listing=True):
            member.paused, member.paused_by_listing, member.pause_reason = False, False, ""
            member.save()
            resumed += 1
        message = f"{ip} is no longer listed; resumed in {resumed} pool(s)."
        _ip_event(ip, IPEventKind.DELISTED, message, {"resumed": resumed}, now=now)
        transaction.on_commit(lambda: signals.ip_delisted.send(IPAddress, ip=ip))
    return zones


def sweep_blocklists(now=None):
    """Check every non-retired IP (and every sending domain) whose answers expired. Returns the IPs checked."""
    checked = 0
    resolver = _resolver()
    for ip in IPAddress.objects.exclude(state=IPState.RETIRED):
        try:
            check_blocklists(ip, now=now, resolver=resolver)
            check_ptr(ip, resolver=resolver)
            checked += 1
        except Exception:  # one failing IP must not stop the sweep
            logger.exception("Blocklist check of IP %s failed", ip.pk)
    for domain in sending_domain_names():
        try:
            check_domain_blocklists(domain, now=now, resolver=resolver)
        except Exception:
            logger.exception("Blocklist check of domain %s failed", domain)
    return checked


def sending_domain_names():
    """Names of the sending domains (from the domains app, when it has them)."""
    from django.apps import apps

    try:
        model = apps.get_model("domains", "SendingDomain")
    except LookupError:
        return []
    field = "name" if any(f.name == "name" for f in model._meta.fields) else "domain"
    return list(model.objects.values_list(field, flat=True).distinct())


def check_ptr(ip, *, resolver=None):
    """Reverse DNS of an IP: `ok` when its PTR name resolves back to it (FCrDNS), else `mismatch` or
    `missing`; `unknown` when DNS failed. Stores the status and the PTR name on the IP."""
    import dns.reversename

    from deliveryhub import dns as dh_dns

    from .choices import PTRStatus

    resolver = resolver or _resolver()
    result = dh_dns.query(dns.reversename.from_address(ip.address).to_text(), "PTR", resolver=resolver)
    hostname = ""
    if result.status in (dh_dns.NXDOMAIN, dh_dns.NODATA):
        status = PTRStatus.MISSING
    elif result.status != dh_dns.ANSWER:
        status = PTRStatus.UNKNOWN
    else:
        hostname = result.records[0].rstrip(".").lower()
        forward = dh_dns.query(hostname, "A" if ip.version == 4 else "AAAA", resolver=resolver)
        if forward.status == dh_dns.ERROR:
            status = PTRStatus.UNKNOWN
        else:
            addresses = {str(ipaddress.ip_address(r)) for r in forward.records}
            status = PTRStatus.OK if ip.address in addresses else PTRStatus.MISMATCH
    IPAddress.objects.filter(pk=ip.pk).update(ptr_status=status, ptr_hostname=hostname[:253])
    ip.ptr_status, ip.ptr_hostname = status, hostname
    return status


# ---------------------------------------------------------------------------------------------------------------------
# Reputation
# ---------------------------------------------------------------------------------------------------------------------


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
    zones = listing_zones(ip)
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
