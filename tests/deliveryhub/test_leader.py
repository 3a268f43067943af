"""The scheduler lease: one holder at a time, takeover after expiry with a new token, fencing of stale tokens, and
real scheduler processes failing over (kill -9, pause and resume)."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.test import TestCase, TransactionTestCase
from django.utils import timezone

from deliveryhub import leader
from deliveryhub.models import Lease

ROOT = Path(__file__).resolve().parents[2]
NAME = "test-lease"


def expire(name=NAME):
    Lease.objects.filter(name=name).update(expires_at=timezone.now() - timedelta(seconds=1))


class LeaseTest(TestCase):
    def test_one_holder_at_a_time(self):
        self.assertEqual(leader.acquire(NAME, "a", 30), 1)
        self.assertIsNone(leader.acquire(NAME, "b", 30))
        self.assertEqual(leader.acquire(NAME, "a", 30), 1)  # renewing keeps the token
        self.assertEqual(leader.current(NAME).holder, "a")

    def test_takeover_after_expiry_bumps_the_token(self):
        leader.acquire(NAME, "a", 30)
        expire()
        self.assertEqual(leader.acquire(NAME, "b", 30), 2)
        self.assertIsNone(leader.acquire(NAME, "a", 30))  # the old holder is a standby now
        self.assertEqual(leader.current(NAME).holder, "b")

    def test_an_expired_holder_reacquires_with_a_new_token(self):
        leader.acquire(NAME, "a", 30)
        expire()
        self.assertEqual(leader.acquire(NAME, "a", 30), 2)  # what it started under token 1 is stale now

    def test_release_lets_a_standby_in_at_once(self):
        leader.acquire(NAME, "a", 30)
        leader.release(NAME, "a")
        self.assertEqual(leader.acquire(NAME, "b", 30), 2)

    def test_stale_token_is_fenced_off(self):
        leader.acquire(NAME, "a", 30)
        with leader.fenced(NAME, 1):
            leader.check_fence()  # current: fine
        expire()
        leader.acquire(NAME, "b", 30)
        with leader.fenced(NAME, 1), self.assertRaises(leader.StaleLeader):
            leader.check_fence()
        with leader.fenced(NAME, 2):
            leader.check_fence()
        leader.check_fence()  # outside any fenced work: nothing to check

    def test_an_expired_lease_fences_its_own_token_too(self):
        leader.acquire(NAME, "a", 30)
        expire()
        with leader.fenced(NAME, 1), self.assertRaises(leader.StaleLeader):
            leader.check_fence()


class SchedulerProcessTest(TransactionTestCase):
    """Two `manage.py scheduler` processes on one database file: one active, the other standing by."""

    def start(self, workdir, name):
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir}/sched.sqlite3", "DELIVERYHUB_VAR_DIR": str(workdir),
               "DELIVERYHUB_SCHEDULER_LEASE_SECONDS": "3", "DELIVERYHUB_SCHEDULER_TICK_SECONDS": "1"}  # fmt: skip
        log = open(Path(workdir) / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, "manage.py", "scheduler", "--skip-checks"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        return proc

    def lease(self, workdir):
        import sqlite3

        with sqlite3.connect(f"{workdir}/sched.sqlite3") as db:
            row = db.execute("SELECT holder, token FROM deliveryhub_lease WHERE name = 'scheduler'").fetchone()
        return row

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        self.fail(f"not within {timeout}s")

    def test_kill_pause_and_resume(self):
        import tempfile

        workdir = tempfile.mkdtemp(prefix="dh-sched-", dir=ROOT / "var")
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir}/sched.sqlite3", "DELIVERYHUB_VAR_DIR": workdir}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
        first, second = self.start(workdir, "first"), self.start(workdir, "second")
        holder, token = self.wait_for(lambda: self.lease(workdir) if (self.lease(workdir) or ("",))[0] else None, 60)
        procs = {str(first.pid): first, str(second.pid): second}
        active = next(proc for pid, proc in procs.items() if f":{pid}:" in holder)
        standby = second if active is first else first
        # Paused (SIGSTOP) past its lease: the standby takes over with a new token; resumed, the old one stands by.
        active.send_signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        new_holder, new_token = self.wait_for(lambda: (r := self.lease(workdir)) and r[0] != holder and r, 30)
        self.assertIn(f":{standby.pid}:", new_holder)
        self.assertEqual(new_token, token + 1)
        self.assertLess(time.monotonic() - paused_at, 3 + 2 + 5)  # lease + a tick (+ slack for a loaded machine)
        active.send_signal(signal.SIGCONT)
        time.sleep(2)
        self.assertEqual(self.lease(workdir)[0], new_holder)  # the resumed one did not take it back
        # Killed (SIGKILL): the other takes over within the lease.
        standby.send_signal(signal.SIGKILL)
        standby.wait()
        killed_at = time.monotonic()
        last_holder, last_token = self.wait_for(lambda: (r := self.lease(workdir)) and r[0] != new_holder and r, 30)
        self.assertIn(f":{active.pid}:", last_holder)
        self.assertEqual(last_token, token + 2)
        self.assertLess(time.monotonic() - killed_at, 10)
        log = (Path(workdir) / ("first.log" if active is first else "second.log")).read_text()
        self.assertIn("is a standby now", log)
        active.send_signal(signal.SIGTERM)
        self.assertEqual(active.wait(15), 0)
