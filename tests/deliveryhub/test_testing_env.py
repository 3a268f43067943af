"""The test-run environment (deliveryhub/testing/pytest_env.py): `make test` on a machine without a Redis falls back to
the embedded one; each xdist worker gets its own database."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import django_rq
import pytest

from deliveryhub import embedded_redis
from deliveryhub.testing.pytest_env import _worker_database

ROOT = Path(__file__).resolve().parents[2]


def test_each_worker_gets_its_own_database_on_tcp_and_unix_urls():
    assert _worker_database("redis://127.0.0.1:6379/15", 1) == "redis://127.0.0.1:6379/14"
    assert _worker_database("redis://127.0.0.1:6379/0", 1) == "redis://127.0.0.1:6379/15"
    assert _worker_database("unix:///tmp/x/redis.sock?db=15", 2) == "unix:///tmp/x/redis.sock?db=13"


@pytest.mark.parametrize("n", [1, 2])
def test_the_redis_in_use_answers_and_takes_jobs(n):
    """Also run by the test below in a child pytest without a Redis of its own."""
    queue = django_rq.get_queue("default")
    queue.connection.flushdb()
    queue.enqueue("os.getpid")
    assert queue.count == 1
    assert queue.connection.connection_pool.connection_kwargs["db"] in range(16)


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket is closed


def test_make_test_without_a_redis_uses_the_embedded_one_and_stops_it():
    var_dir = tempfile.mkdtemp(prefix="dh-t-")  # short: unix socket paths have 107 bytes at most
    try:
        local = f"redis://127.0.0.1:{closed_port()}/15"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DELIVERYHUB_", "PYTEST_", "REDIS_URL"))}
        env.update({"DELIVERYHUB_TEST_REDIS_URL": local, "DELIVERYHUB_VAR_DIR": var_dir})
        env.pop("DATABASE_URL", None)  # a fresh machine: SQLite
        test = f"{Path(__file__).relative_to(ROOT)}::test_the_redis_in_use_answers_and_takes_jobs"
        result = subprocess.run(
            [sys.executable, "-m", "pytest", test], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=240,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout
        assert f"redis: embedded Redis (nothing answered at {local}): unix://{var_dir}/redis-test.sock" in result.stdout
        assert not embedded_redis.ping(Path(var_dir) / "redis-test.sock"), "stopped when the run ended"
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
