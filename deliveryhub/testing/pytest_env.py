"""Test-run environment, loaded as a pytest plugin (`-p deliveryhub.testing.pytest_env` in pytest.ini) so that it runs
before pytest-django reads the settings.

Defaults: the real Redis on 127.0.0.1:6379 (db 15) unless REDIS_URL says otherwise, and var/test for files.

Under pytest-xdist (`make test PYTEST_ARGS="-n 2"`) each worker gets a Redis database and a var/ directory of its own
(gw0: the given database, gw1: the one below it, …), because tests flush Redis and write under var/; subprocesses
started by tests (real RQ workers, the scheduler) inherit both through the environment.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]


def _configure(environ):
    environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    environ.setdefault("DELIVERYHUB_VAR_DIR", str(ROOT / "var" / "test"))
    worker = environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker.removeprefix("gw") or 0) if worker.startswith("gw") else 0
    if not index or environ.get("DELIVERYHUB_TEST_WORKER_ENV") == worker:
        return
    url = urlsplit(environ["REDIS_URL"])
    if url.scheme in ("redis", "rediss"):
        base = int(url.path.strip("/") or 0)
        environ["REDIS_URL"] = urlunsplit(url._replace(path=f"/{(base - index) % 16}"))
    environ["DELIVERYHUB_VAR_DIR"] = f"{environ['DELIVERYHUB_VAR_DIR']}-{worker}"
    environ["DELIVERYHUB_TEST_WORKER_ENV"] = worker  # done once, even if this module is imported again


_configure(os.environ)
