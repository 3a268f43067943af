"""Redis clients built from REDIS_URL (settings.REDIS_CONNECTION): a plain URL, or the current master found through
Redis Sentinel (`redis+sentinel://host:port,host:port/<master>/<db>`), found again after a failover.

RQ (django-rq) reads the same settings from RQ_QUEUES; code that needs Redis outside RQ (warm-up counters) asks here.
"""

import redis
from django.conf import settings
from redis.sentinel import Sentinel

_clients = {}


def connection(*, decode_responses=False):
    """A client for REDIS_URL (one per URL, answer type and process)."""
    key = (settings.REDIS_URL, decode_responses)
    client = _clients.get(key)
    if client is None:
        config = settings.REDIS_CONNECTION
        if "SENTINELS" in config:
            sentinel = Sentinel(config["SENTINELS"], sentinel_kwargs=config["SENTINEL_KWARGS"],
                                socket_timeout=config["SOCKET_TIMEOUT"])  # fmt: skip
            client = sentinel.master_for(
                config["MASTER_NAME"], db=config["DB"], password=config["PASSWORD"],
                socket_timeout=config["SOCKET_TIMEOUT"], decode_responses=decode_responses,
            )  # fmt: skip
        else:
            client = redis.Redis.from_url(config["URL"], decode_responses=decode_responses)
        _clients[key] = client
    return client
