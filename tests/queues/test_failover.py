"""Scheduler failover with real processes during a 20,000-message send (tests/queues/failover_scenario.py): the
active scheduler is killed with SIGKILL, the standby takes the lease over within 30 s with a new fencing token,
and every message is delivered exactly once."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from deliveryhub import leader
from deliveryhub.jobs import run_system_job
from deliveryhub.models import Lease
from deliveryhub.testing.cases import TenantTestCase
from queues.models import Message
from queues.testing import make_sending_domain, make_sending_ips

from .helpers import flush_redis, scheduled_batches, send

TAKEOVER_LIMIT = 30  # seconds (the promise: SCHEDULER_LEASE_SECONDS + a tick, 16 s with the defaults)


def test_standby_scheduler_takes_over_during_a_send(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'failover.sqlite3'}",
        "DELIVERYHUB_VAR_DIR": str(tmp_path),
        "DELIVERYHUB_NODE": "failover-node",
        "DELIVERYHUB_DEMO_MODE": "false",
        "DELIVERYHUB_SCHEDULER_LEASE_SECONDS": "15",
        "DELIVERYHUB_SCHEDULER_INTERVAL": "1",
        "DELIVERYHUB_LOG_LEVEL": "WARNING",
        "DELIVERYHUB_DNS_RESOLVERS": "127.0.0.1:9",  # nothing answers: the periodic DNS and blocklist jobs give up fast
        "DELIVERYHUB_DNS_TIMEOUT": "0.5",
    }
    script = Path(__file__).with_name("failover_scenario.py")
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=900, cwd=script.parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["killed"] and result["standby_took_over"], result
    assert result["takeover_seconds"] is not None and result["takeover_seconds"] < TAKEOVER_LIMIT, result
    assert result["new_token"] == result["first_token"] + 1, result
    assert result["statuses"] == {"delivered": result["messages"]}, result
    # A scheduler holds no messages: losing it sends nothing twice (the bound is a dead worker's batch).
    assert result["sink_total"] == result["sink_unique"] == result["messages"], result
    assert result["sink_matches_db"], result
    print(f"failover: takeover {result['takeover_seconds']:.1f} s, {result['messages']} messages in "
          f"{result['seconds']:.0f} s")


class FencingTest(TenantTestCase):
    """The enqueue point refuses work carrying a lease token that is no longer current."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        make_sending_domain(cls.tenant_a, "mail-a.test")
        make_sending_ips(("127.0.0.2",))

    def setUp(self):
        flush_redis()

    def test_a_stale_token_enqueues_nothing_the_current_one_does(self):
        send(self.tenant_a, ["a@example.com", "b@example.com"])
        self.assertEqual(leader.acquire(leader.SCHEDULER_LEASE, "old-leader", 30), 1)
        Lease.objects.filter(name=leader.SCHEDULER_LEASE).update(expires_at=timezone.now() - timedelta(seconds=1))
        self.assertEqual(leader.acquire(leader.SCHEDULER_LEASE, "new-leader", 30), 2)
        run_system_job("queues.jobs.schedule_deliveries", (leader.SCHEDULER_LEASE, 1))  # paused, resumed: stale
        self.assertEqual(scheduled_batches(), {})
        self.assertFalse(Message.objects.exclude(lease_owner=None).exists())
        run_system_job("queues.jobs.schedule_deliveries", (leader.SCHEDULER_LEASE, 2))
        self.assertEqual(sum(len(ids) for ids in scheduled_batches().values()), 2)
