"""Source-IP selection, the delivery engine's entry point: weighted rotation over usable IPs, reservations
against warm-up caps and throttle-rule rates (Redis INCRBY as the gate, the database as the authority), and the
outcome counts that feed warm-up and reputation."""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import date as date_type

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from .. import counters
from ..choices import SENDING_IP_STATES, Provider
from ..constants import (
    HOURLY_KEY_TTL_SECONDS,
    RATE_HOUR_KEY_TTL_SECONDS,
    RATE_KEY_PREFIX,
    RATE_MINUTE_KEY_TTL_SECONDS,
    TOTAL,
    USAGE_DIRTY_SET_PREFIX,
    USAGE_KEY_TTL_SECONDS,
)
from ..models import IPAddress, IPDailyUsage, IPPool, IPPoolMember
from .throttling import pair_state, throttle_rules


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


def usage_today(ip, now=None):
    """{provider|"total": sends reserved today} for an IP: Redis where it has the counter, else the database."""
    return usage_today_many([ip], now)[ip.pk]


def usage_today_many(ips, now=None):
    """`usage_today` of many IPs at once ({ip id: {provider|"total": n}}): one query for their time zones, one for
    their database counts and one Redis MGET, whatever their number (a list page or an API page)."""
    now = now or timezone.now()
    ips = list(ips)
    if not ips:
        return {}
    IPAddress.prime_time_zones(ips)
    days = {ip.pk: ip.local_date(now) for ip in ips}
    db = {}
    rows = IPDailyUsage.objects.filter(ip__in=[ip.pk for ip in ips], date__in=set(days.values()))
    for ip_id, day, provider, reserved in rows.values_list("ip_id", "date", "provider", "reserved"):
        if days[ip_id] == day:
            db.setdefault(ip_id, {})[provider] = reserved
    names = (*Provider.values, TOTAL)
    keys = [counters.daily_key(ip.pk, days[ip.pk], name) for ip in ips for name in names]
    values = iter(counters.get_redis().mget(keys))
    result = {}
    for ip in ips:
        stored = db.get(ip.pk, {})
        result[ip.pk] = {}
        for name in names:
            value = next(values)
            fallback = sum(stored.values()) if name == TOTAL else stored.get(name, 0)
            result[ip.pk][name] = int(value) if value is not None else fallback
    return result
