"""A circuit breaker per destination host (MX host or relay, and port), shared by every worker through Redis.

A host that lets a connection time out, accepts TCP and never greets (a tarpit), refuses the connection, or answers
421 at the greeting is marked **down** for `SMTP_BREAKER_SECONDS`, doubling with each failure in a row up to
`SMTP_BREAKER_MAX_SECONDS`. While it is down no worker connects to it: a batch for it tries the destination's other
hosts, and when every host is down its messages defer at once with the reason and the time the breaker opens again
(no connection, no worker held for a connect timeout per lane). When the time has passed the host is *half-open*:
the next batch tries it with one connection (the pool opens the first connection to a host it has no proof of alone,
see `senders/smtp.py`); a success closes the breaker (the key is deleted), a failure opens it again for longer.

State per host is one Redis hash (`failures`, `until`, `reason`), written by a Lua script so concurrent workers
count one failure each; it expires a while after its last failure. Reading costs one round trip per batch (all
the destination's hosts at once), writing happens only on failures and on the first success after them. Redis
being away never stops delivery: the breaker then knows nothing and every host is tried.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

from deliveryhub.redis_client import connection

from ..constants import HOST_HEALTH_KEY_PREFIX

logger = logging.getLogger(__name__)

# KEYS[1] = host; ARGV = now, base, max, reason. A failure while the host is already down (other lanes, other workers
# of the same incident) does not lengthen it. Returns {failures, until}.
_FAIL = """
local now = tonumber(ARGV[1])
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local untl = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if untl > now then return {failures, tostring(untl)} end
failures = failures + 1
local wait = math.min(tonumber(ARGV[2]) * 2 ^ (failures - 1), tonumber(ARGV[3]))
untl = now + wait
redis.call('HSET', KEYS[1], 'failures', failures, 'until', tostring(untl), 'reason', ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(wait + tonumber(ARGV[3])))
return {failures, tostring(untl)}
"""


@dataclass(frozen=True)
class HostHealth:
    """What the breaker knows of a host that failed lately: `until` (epoch seconds it is down to), `failures` in a
    row, the last `reason`."""

    failures: int
    until: float
    reason: str

    def down(self, now: float | None = None) -> bool:
        return self.until > (time.time() if now is None else now)


def host_key(host: str, port: int) -> str:
    return f"{HOST_HEALTH_KEY_PREFIX}{host.lower()}:{port}"


def read(hosts) -> dict[tuple[str, int], HostHealth]:
    """{(host, port): HostHealth} for those of `hosts` that failed lately (down, or half-open when `until` passed);
    one round trip. Empty when Redis cannot be read."""
    hosts = list(hosts)
    if not hosts:
        return {}
    try:
        pipeline = connection(decode_responses=True).pipeline(transaction=False)
        for host, port in hosts:
            pipeline.hmget(host_key(host, port), "failures", "until", "reason")
        answers = pipeline.execute()
    except RedisError:
        logger.warning("Reading the health of %d host(s) from Redis failed: trying them all", len(hosts))
        return {}
    return {
        hostport: HostHealth(int(failures), float(until or 0), reason or "")
        for hostport, (failures, until, reason) in zip(hosts, answers, strict=True)
        if failures is not None
    }


def mark_down(host: str, port: int, reason: str) -> HostHealth | None:
    """Count a failure of the host (see the module docstring); the breaker's state after it, None if Redis failed."""
    try:
        failures, until = connection(decode_responses=True).eval(
            _FAIL, 1, host_key(host, port), time.time(), settings.SMTP_BREAKER_SECONDS,
            settings.SMTP_BREAKER_MAX_SECONDS, reason[:300],
        )  # fmt: skip
    except RedisError:
        logger.warning("Marking %s:%s down in Redis failed", host, port)
        return None
    logger.info("SMTP host %s:%s marked down (%s failure(s) in a row) until %s: %s", host, port, failures, until,
                reason)  # fmt: skip
    return HostHealth(int(failures), float(until), reason)


def mark_up(host: str, port: int) -> None:
    """The host answered again: close its breaker."""
    try:
        connection().delete(host_key(host, port))
    except RedisError:
        logger.warning("Clearing the health of %s:%s in Redis failed", host, port)


def clear() -> None:
    """Forget every host's health (tests; an operator after fixing the network)."""
    client = connection()
    keys = list(client.scan_iter(f"{HOST_HEALTH_KEY_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)
