"""Redis access of the IP pools app: the warm-up counters that gate source-IP selection.

Redis INCRBY is the atomic gate (two workers can never both take the last unit of a cap); the database
(`IPDailyUsage`) is the authority: a missing key is re-seeded from it, and `flush_usage()` writes the
counters back to it, so a Redis restart never resets a cap to zero.
"""

from deliveryhub.redis_client import connection

from .constants import USAGE_DIRTY_SET_PREFIX, USAGE_KEY_PREFIX


def get_redis():
    """A client for settings.REDIS_URL (plain or Sentinel; one per URL and process), answering str."""
    return connection(decode_responses=True)


def daily_key(ip_id, date, provider):
    return f"{USAGE_KEY_PREFIX}{ip_id}:{date.isoformat()}:{provider}"


def hourly_key(ip_id, date, hour, provider):
    return f"{USAGE_KEY_PREFIX}{ip_id}:{date.isoformat()}:h{hour:02d}:{provider}"


def dirty_set(date):
    return f"{USAGE_DIRTY_SET_PREFIX}{date.isoformat()}"


def parse_daily_key(key):
    """(ip_id, date string, provider) of a daily key, or None for an hourly one."""
    parts = key[len(USAGE_KEY_PREFIX) :].split(":")
    if len(parts) != 3:
        return None
    return int(parts[0]), parts[1], parts[2]


def seed(client, key, value, ttl):
    """Create the counter at `value` unless it exists (NX: concurrent seeders agree, the first wins)."""
    client.set(key, int(value), nx=True, ex=ttl)


def take(client, key, wanted, cap):
    """Atomically take up to `wanted` units below `cap` from counter `key`: INCRBY, then give back any overshoot.

    Returns how many were taken (0..wanted). The counter never ends above `cap` because of this call, and
    the sum of what concurrent callers take never exceeds what was left.
    """
    if wanted <= 0:
        return 0
    value = client.incrby(key, wanted)
    over = value - cap
    if over <= 0:
        return wanted
    give_back = min(over, wanted)
    client.decrby(key, give_back)
    return wanted - give_back


def give_back(client, key, amount):
    if amount > 0:
        client.decrby(key, amount)
