"""Adaptive throttling of (source IP, destination provider) pairs, kept in Redis.

A pair's state is a Redis hash: `level` (halvings in force: the pair opens `base >> level` connections and its
throttle rules' message rates are divided by 2^level), `until` (epoch seconds the pair is suspended to), `backoff`
(the last suspension's length) and `ok` (deliveries in a row since the last change).

- A rate-limit reply (`slow`): level + 1 (at most THROTTLE_MAX_LEVEL), suspended for THROTTLE_SUSPEND_SECONDS,
  doubling on each repeat up to THROTTLE_SUSPEND_MAX_SECONDS (longer when the reply asked for it, up to
  DELIVERY_RETRY_HINT_MAX_SECONDS, or when the provider's words ask for longer: `ippools/data/suspensions.tsv`).
  Replies that arrive while the pair is already suspended belong to the same incident and change nothing.
- Deliveries (`succeed`): after THROTTLE_RESTORE_AFTER in a row the pair eases one level (and the next
  suspension's length halves); at level 0 it runs at full speed and the next incident starts from the beginning.

Each transition is one Lua script, so concurrent workers never both apply it and exactly one of them learns that it
happened (and records it: `ippools.services` writes the database row and the IP event). The database
(`ThrottleState`) is the durable copy: a missing hash is re-seeded from it before use.
"""

import csv
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from .constants import THROTTLE_KEY_PREFIX, THROTTLE_KEY_TTL_SECONDS

# KEYS[1] = pair; ARGV = level, until, backoff, ttl. Creates the hash unless it exists (the first seeder wins).
_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'level', ARGV[1], 'until', ARGV[2], 'backoff', ARGV[3], 'ok', 0)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS[1] = pair; ARGV = now, base, max backoff, hinted wait, max level, ttl, longest hinted wait.
# Returns {changed, level, until, backoff}.
_SLOW = """
local now = tonumber(ARGV[1])
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
local untl = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local backoff = tonumber(redis.call('HGET', KEYS[1], 'backoff') or '0')
if untl > now then return {0, level, untl, backoff} end
if backoff <= 0 then backoff = tonumber(ARGV[2]) else backoff = math.min(backoff * 2, tonumber(ARGV[3])) end
local wait = math.max(backoff, math.min(tonumber(ARGV[4]), tonumber(ARGV[7])))
level = math.min(level + 1, tonumber(ARGV[5]))
untl = now + wait
redis.call('HSET', KEYS[1], 'level', level, 'until', untl, 'backoff', backoff, 'ok', 0)
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {1, level, untl, backoff}
"""

# KEYS[1] = pair; ARGV = deliveries, needed in a row, now, base, ttl. Returns {changed, level, backoff}.
_SUCCEED = """
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
local backoff = tonumber(redis.call('HGET', KEYS[1], 'backoff') or '0')
if level <= 0 then return {0, 0, backoff} end
if tonumber(redis.call('HGET', KEYS[1], 'until') or '0') > tonumber(ARGV[3]) then return {0, level, backoff} end
local ok = redis.call('HINCRBY', KEYS[1], 'ok', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
if ok < tonumber(ARGV[2]) then return {0, level, backoff} end
level = level - 1
if level == 0 then backoff = 0 else backoff = math.max(tonumber(ARGV[4]), math.floor(backoff / 2)) end
redis.call('HSET', KEYS[1], 'level', level, 'backoff', backoff, 'ok', 0)
return {1, level, backoff}
"""


@dataclass(frozen=True)
class PairState:
    """A pair's adaptive state: `level` halvings in force, suspended until `until` (epoch seconds, 0: not)."""

    level: int = 0
    until: int = 0
    backoff: int = 0

    def suspended(self, now):
        return self.until > now.timestamp()

    @property
    def until_datetime(self):
        return datetime.fromtimestamp(self.until, tz=UTC) if self.until else None

    def scale(self, value):
        """A limit under this state: halved `level` times, never below 1 (None stays unlimited)."""
        if value is None:
            return None
        return max(1, int(value) >> self.level)


def pair_key(ip_id, provider):
    return f"{THROTTLE_KEY_PREFIX}{ip_id}:{provider}"


def _epoch(moment):
    return int(moment.timestamp()) if moment else 0


def seed(client, ip_id, provider, record=None):
    """Create the pair's hash from its database record (or at full speed) unless Redis has it."""
    level, until, backoff = 0, 0, 0
    if record is not None:
        level, until, backoff = record.level, _epoch(record.suspended_until), record.backoff_seconds
    client.eval(_SEED, 1, pair_key(ip_id, provider), level, until, backoff, THROTTLE_KEY_TTL_SECONDS)


def read(client, ip_id, provider):
    """The pair's state, or None when Redis does not have it (seed it from the database first)."""
    values = client.hmget(pair_key(ip_id, provider), "level", "until", "backoff")
    if values[0] is None:
        return None
    return PairState(int(values[0]), int(float(values[1] or 0)), int(float(values[2] or 0)))


def slow(client, ip_id, provider, *, now, hint=None):
    """Apply a rate-limit reply: (changed, PairState). `hint`: seconds the reply asked us to wait."""
    changed, level, until, backoff = client.eval(
        _SLOW, 1, pair_key(ip_id, provider), int(now.timestamp()), settings.THROTTLE_SUSPEND_SECONDS,
        settings.THROTTLE_SUSPEND_MAX_SECONDS, int(hint or 0), settings.THROTTLE_MAX_LEVEL,
        max(THROTTLE_KEY_TTL_SECONDS, int(hint or 0) * 2), settings.DELIVERY_RETRY_HINT_MAX_SECONDS,
    )  # fmt: skip
    return bool(changed), PairState(int(level), int(until), int(backoff))


def succeed(client, ip_id, provider, count, *, now):
    """Count `count` deliveries in a row: (changed, PairState) — changed when the pair eased one level."""
    changed, level, backoff = client.eval(
        _SUCCEED, 1, pair_key(ip_id, provider), int(count), settings.THROTTLE_RESTORE_AFTER, int(now.timestamp()),
        settings.THROTTLE_SUSPEND_SECONDS, THROTTLE_KEY_TTL_SECONDS,
    )  # fmt: skip
    return bool(changed), PairState(int(level), 0, int(backoff))


SUSPENSIONS_PATH = Path(__file__).resolve().parent / "data" / "suspensions.tsv"


@functools.cache
def provider_suspensions() -> tuple[tuple[str, re.Pattern, int], ...]:
    """(provider, pattern, seconds) of `ippools/data/suspensions.tsv` (loaded once)."""
    rows = []
    with SUSPENSIONS_PATH.open(newline="", encoding="utf-8") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row or row[0].startswith("#") or row[0] == "provider":
                continue
            if len(row) != 4:
                raise ValueError(f"{SUSPENSIONS_PATH}:{line_number}: expected 4 tab-separated columns, got {len(row)}")
            rows.append((row[0], re.compile(row[1], re.IGNORECASE), int(row[2])))
    return tuple(rows)


def suspension_for(provider, reply):
    """Seconds the provider's rate-limit `reply` asks the pair to stay away (0: the default applies)."""
    return max((seconds for name, pattern, seconds in provider_suspensions()
                if name == provider and pattern.search(reply or "")), default=0)  # fmt: skip
