"""Redis Sentinel: REDIS_URL's `redis+sentinel://` form is parsed into django-rq's Sentinel settings, and real
processes (the scheduler enqueueing, an RQ worker running the job) find the master through a real `redis-sentinel`,
then the new master after the old one is killed and the sentinel promoted its replica."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from deliveryhub.settings import redis_connection

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = shutil.which("redis-sentinel")
REDIS_SERVER = shutil.which("redis-server")


def test_plain_url_stays_a_url():
    assert redis_connection("redis://127.0.0.1:6379/3") == {"URL": "redis://127.0.0.1:6379/3"}


def test_sentinel_url_names_the_sentinels_master_and_db():
    config = redis_connection("redis+sentinel://:s3cret@10.0.0.1:26379,sentinel-b/mymaster/2")
    assert config["SENTINELS"] == [("10.0.0.1", 26379), ("sentinel-b", 26379)]
    assert (config["MASTER_NAME"], config["DB"], config["PASSWORD"]) == ("mymaster", 2, "s3cret")
    assert config["SENTINEL_KWARGS"] == {"password": "s3cret"}


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:26379", "redis+sentinel:///mymaster",
                                 "redis+sentinel://h:1/m/x", "redis+sentinel://h:1/m/0/extra"])  # fmt: skip
def test_bad_sentinel_urls_fail_fast(url):
    with pytest.raises(ImproperlyConfigured):
        redis_connection(url)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout}s")


@unittest.skipUnless(SENTINEL and REDIS_SERVER, "redis-sentinel is not installed (apt-get install redis-sentinel)")
def test_processes_follow_a_sentinel_failover(tmp_path):
    master_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
    procs = []

    def start(*args):
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    try:
        master = start(REDIS_SERVER, "--port", str(master_port), "--save", "", "--appendonly", "no",
                       "--dir", str(tmp_path))  # fmt: skip
        start(REDIS_SERVER, "--port", str(replica_port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
              "--replicaof", "127.0.0.1", str(master_port))  # fmt: skip
        conf = tmp_path / "sentinel.conf"
        conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                        f"sentinel monitor dh 127.0.0.1 {master_port} 1\n"
                        "sentinel down-after-milliseconds dh 1000\nsentinel failover-timeout dh 5000\n")  # fmt: skip
        start(SENTINEL, str(conf))
        replica = redis.Redis(port=replica_port)
        wait(lambda: replica.info("replication")["master_link_status"] == "up", 20, "replication")
        wait(lambda: redis.Redis(port=sentinel_port).sentinel_masters().get("dh"), 20, "the sentinel")

        env = {**os.environ, "REDIS_URL": f"redis+sentinel://127.0.0.1:{sentinel_port}/dh/0",
               "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "DELIVERYHUB_VAR_DIR": str(tmp_path)}  # fmt: skip

        def manage(*args):
            done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=120)  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
            return done.stdout

        manage("migrate", "-v0")
        assert "Enqueued" in manage("scheduler", "--once")  # through the sentinel, to the master
        assert redis.Redis(port=master_port).llen("rq:queue:default") > 0
        manage("rqworker", "default", "low", "--burst")
        assert redis.Redis(port=master_port).llen("rq:queue:default") == 0

        master.send_signal(signal.SIGKILL)
        master.wait()
        wait(lambda: redis.Redis(port=replica_port).info("replication")["role"] == "master", 30, "the failover")
        redis.Redis(port=replica_port).flushdb()  # the scheduler's "already enqueued" keys: due again now
        assert "Enqueued" in manage("scheduler", "--once")  # the same REDIS_URL finds the new master
        assert redis.Redis(port=replica_port).llen("rq:queue:default") > 0
        manage("rqworker", "default", "low", "--burst")
        assert redis.Redis(port=replica_port).llen("rq:queue:default") == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
