"""Limits of one (source IP, provider) pair held at send time across every worker of a node, in Redis.

- **Connections**: a semaphore per pair, a sorted set whose members are the open connections (one per worker
  process and connection) scored by when their lease expires. Taking a slot drops expired members first, so the
  slots of a worker that died (kill -9, OOM) come back after `LEASE_SECONDS` without anyone releasing them; a live
  worker renews its leases every few seconds (`ConnectionPool.renew_leases`, from the pool's reaper) and releases a
  slot when it closes the connection. One Lua script per acquisition: a connection costs one round trip, a message
  none.
- **Message rates**: a token bucket per throttle rule and pair (`max_per_minute`, `max_per_hour`), refilled
  continuously, holding about two seconds' worth (at least one message): in any minute at most the rule's rate plus
  that burst go out, however the scheduler's batches fall. A lane takes tokens in chunks (one round trip per chunk,
  not per message) and waits for the next token when the bucket is empty.

The limits come from `ippools.services.pair_limits()` (throttle rules, scaled down by the pair's adaptive level).
Redis being away never stops delivery: a gate that cannot be read lets the connection or message through.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass

from redis.exceptions import RedisError

from deliveryhub.redis_client import connection

from ..constants import PAIR_CONNECTIONS_KEY_PREFIX, PAIR_RATE_KEY_PREFIX

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60  # a connection slot not renewed for this long is free again (its worker died)
BURST_SECONDS = 2.0  # a token bucket holds this many seconds' worth of messages (at least one)
CHUNK = 10  # tokens taken per round trip at most

# KEYS[1] = the pair's zset; ARGV = now, lease, limit, member. Returns 1 when the member holds a slot.
_ACQUIRE = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 2))
  return 1
end
return 0
"""

# KEYS = buckets; ARGV = now, wanted, then (rate per second, burst) per bucket. Takes as many tokens as every bucket
# has (at most `wanted`) from all of them at once. Returns {granted, seconds until the next token if none}.
_TAKE = """
local now = tonumber(ARGV[1])
local grant = tonumber(ARGV[2])
local wait = 0
local levels = {}
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(v[1] or burst)
  local ts = tonumber(v[2] or now)
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  levels[i] = tokens
  local whole = math.floor(tokens)
  if whole < grant then grant = whole end
  if tokens < 1 then wait = math.max(wait, (1 - tokens) / rate) end
end
if grant < 0 then grant = 0 end
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  redis.call('HSET', key, 'tokens', tostring(levels[i] - grant), 'ts', tostring(now))
  redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
end
return {grant, tostring(wait)}
"""


@dataclass(frozen=True)
class Rate:
    """One token bucket: `name` (rule and window), messages per second, burst."""

    name: str
    per_second: float
    burst: int

    @classmethod
    def per(cls, name: str, count: int, seconds: int) -> Rate:
        per_second = count / seconds
        return cls(name, per_second, max(1, math.ceil(per_second * BURST_SECONDS)))


class PairGate:
    """The node-wide limits of one (source IP, provider) pair (see the module docstring). Its methods do blocking
    Redis calls: the asyncio sender runs them in a thread."""

    def __init__(self, ip_id, provider: str, *, max_connections: int | None = None, rates: tuple[Rate, ...] = ()):
        self.ip_id = ip_id
        self.provider = provider
        self.max_connections = max_connections
        self.rates = tuple(rates)
        self.connections_key = f"{PAIR_CONNECTIONS_KEY_PREFIX}{ip_id}:{provider}"

    @classmethod
    def for_limits(cls, ip_id, provider: str, limits) -> PairGate | None:
        """The gate of a pair's `ippools.services.PairLimits`, or None when no rule limits it."""
        if limits is None or not (limits.node_connections or limits.rates):
            return None
        rates = tuple(Rate.per(name, count, seconds) for name, count, seconds in limits.rates)
        return cls(ip_id, provider, max_connections=limits.node_connections, rates=rates)

    def __repr__(self) -> str:
        return f"<PairGate {self.ip_id}/{self.provider} connections≤{self.max_connections} rates={self.rates}>"

    # -- connections ----------------------------------------------------------------------------------------------

    @staticmethod
    def new_member() -> str:
        """A slot holder's name: unique per process and connection."""
        return f"{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:12]}"

    def acquire(self, member: str) -> bool:
        """Take (or renew) a connection slot; True when held (or when there is no limit, or Redis is away)."""
        if not self.max_connections:
            return True
        try:
            held = connection().eval(_ACQUIRE, 1, self.connections_key, time.time(), LEASE_SECONDS,
                                     self.max_connections, member)  # fmt: skip
        except RedisError:
            logger.warning("Connection slots of %s unreadable: connecting anyway", self)
            return True
        return bool(held)

    def release(self, member: str) -> None:
        if not self.max_connections:
            return
        try:
            connection().zrem(self.connections_key, member)
        except RedisError:
            logger.warning("Releasing a connection slot of %s failed (it expires by itself)", self)

    @staticmethod
    def renew(leases: dict[str, PairGate]) -> None:
        """Push the expiry of every slot this process holds forward (one round trip for all)."""
        if not leases:
            return
        until = time.time() + LEASE_SECONDS
        try:
            pipeline = connection().pipeline(transaction=False)
            for member, gate in leases.items():
                pipeline.zadd(gate.connections_key, {member: until}, xx=True)
            pipeline.execute()
        except RedisError:
            logger.warning("Renewing %d connection slot(s) failed", len(leases))

    # -- message rates --------------------------------------------------------------------------------------------

    def take(self, wanted: int) -> tuple[int, float]:
        """(tokens granted, seconds until the next one when none was): up to `wanted`, from every bucket at once."""
        if not self.rates:
            return wanted, 0.0
        keys = [f"{PAIR_RATE_KEY_PREFIX}{rate.name}:{self.ip_id}:{self.provider}" for rate in self.rates]
        args = [time.time(), wanted]
        for rate in self.rates:
            args += [rate.per_second, rate.burst]
        try:
            granted, wait = connection().eval(_TAKE, len(keys), *keys, *args)
        except RedisError:
            logger.warning("Rate buckets of %s unreadable: sending anyway", self)
            return wanted, 0.0
        return int(granted), float(wait)

    @property
    def chunk(self) -> int:
        return max(1, min(CHUNK, *(rate.burst for rate in self.rates))) if self.rates else CHUNK
