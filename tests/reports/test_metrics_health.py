"""/metrics parsed by prometheus_client's own parser, values equal to the database after a real delivery run, bounded
label cardinality, access by platform key or allow-listed network only; /healthz; /readyz against a real Redis that
is stopped, a scheduler lease and node heartbeats."""

import json
import re
import shutil
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deliveryhub import leader
from deliveryhub import services as core
from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.smtp import SMTPSink
from ippools.models import DeliveryNode
from ippools.services import heartbeat
from queues.delivery import mx, state
from queues.models import DeliveryAttempt, Message, MessageEvent
from queues.testing import make_sending_domain, make_sending_ips
from reports import rollups

from ..queues.helpers import flush_redis
from .monitoring_helpers import mixed_run, route_everything_to

ALLOWED_LABELS = {"tenant", "pool", "source", "provider", "state", "status", "code", "category", "queue", "node",
                  "domain", "severity", "enabled", "active", "le"}  # fmt: skip


def families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(family, **labels):
    return sum(s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())
               and s.name.endswith("_total"))  # fmt: skip


@override_settings(DEMO_MODE=False)
class MetricsTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2", "127.0.0.3"))
        _, cls.platform_key = core.create_api_key(tenant=None, name="prometheus")

    def setUp(self):
        flush_redis()
        mx.clear_cache()
        self.addCleanup(state.close)
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        route_everything_to(self.tenant_a, self.sink)

    def scrape(self, key=None, **extra):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
        return Client().get("/metrics", **headers, **extra)

    def test_metrics_parse_and_match_the_database(self):
        mixed_run(self, self.tenant_a, self.sink)
        rollups.roll_up(now=timezone.now() + timedelta(minutes=1))
        response = self.scrape(self.platform_key)
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain; version=0.0.4"))
        found = families(response.content.decode())
        self.assertGreaterEqual(len(found), 40, sorted(found))
        tenant = self.tenant_a.slug
        attempts = DeliveryAttempt.objects.filter(message__tenant=self.tenant_a)
        self.assertEqual(value(found["deliveryhub_messages_delivered"], tenant=tenant),
                         attempts.filter(status="delivered").count())  # fmt: skip
        self.assertEqual(value(found["deliveryhub_delivery_attempts"], tenant=tenant), attempts.count())
        self.assertEqual(value(found["deliveryhub_messages_bounced"], tenant=tenant),
                         attempts.filter(status="bounced").count() + 1)  # fmt: skip # + the DSN
        self.assertEqual(value(found["deliveryhub_complaints"], tenant=tenant),
                         MessageEvent.objects.filter(kind="complained").count())  # fmt: skip
        self.assertEqual(value(found["deliveryhub_messages_accepted"], tenant=tenant), Message.objects.count())
        self.assertEqual(value(found["deliveryhub_messages_delivered"], provider="google"),
                         attempts.filter(status="delivered", message__rcpt_domain="gmail.com").count())  # fmt: skip
        self.assertEqual(value(found["deliveryhub_messages_delivered"], pool=self.pool.name),
                         attempts.filter(status="delivered").count())  # fmt: skip
        # The latency histogram: its count is the delivered count, its buckets cumulative.
        histogram = found["deliveryhub_delivery_latency_seconds"]
        count = sum(s.value for s in histogram.samples if s.name.endswith("_count"))
        self.assertEqual(count, attempts.filter(status="delivered").count())
        self.assertEqual(value(found["deliveryhub_smtp_replies"], code="550", status="bounced"), 4)
        node = found["deliveryhub_node_up"]
        self.assertEqual({s.labels["node"]: s.value for s in node.samples}[self.node.name], 1.0)
        # Bounded labels: no recipient, message id or campaign ever labels a series.
        for family in found.values():
            for sample in family.samples:
                self.assertLessEqual(set(sample.labels), ALLOWED_LABELS, family.name)
                for label in sample.labels.values():
                    self.assertNotIn("@", label, family.name)
        series = sum(len(family.samples) for family in found.values())
        self.assertLess(series, 1000)

    def test_metrics_need_a_platform_key_or_an_allowed_network(self):
        _, tenant_key = core.create_api_key(tenant=self.tenant_a, name="t")
        self.assertEqual(self.scrape().status_code, 401)
        self.assertEqual(self.scrape("dh_op_wrongwrongwrongwrong").status_code, 401)
        self.assertEqual(self.scrape(tenant_key).status_code, 403)
        self.client.force_login(self.alice)  # a session is not a credential here
        self.assertEqual(self.client.get("/metrics").status_code, 401)
        with override_settings(METRICS_ALLOWED_NETWORKS=["10.0.0.0/8", "127.0.0.0/8"]):
            self.assertEqual(self.scrape().status_code, 200)
            self.assertEqual(self.scrape(REMOTE_ADDR="192.0.2.9").status_code, 401)
        with override_settings(METRICS_ALLOWED_NETWORKS=["10.0.0.0/8"]):
            self.assertEqual(self.scrape().status_code, 401)
            self.assertEqual(self.scrape(REMOTE_ADDR="10.1.2.3").status_code, 200)

    def test_every_metric_the_shipped_grafana_dashboard_uses_exists(self):
        path = Path(settings.BASE_DIR) / "docs" / "grafana" / "deliveryhub-dashboard.json"
        dashboard = json.loads(path.read_text())
        used = {re.sub(r"_(total|bucket)$", "", name) for panel in dashboard["panels"] for target in panel["targets"]
                for name in re.findall(r"deliveryhub_[a-z_]+", target["expr"])}  # fmt: skip
        found = set(families(self.scrape(self.platform_key).content.decode()))
        self.assertGreaterEqual(len(used), 15)
        self.assertEqual(used - found, set())


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisProcess:
    """A real redis-server on a free loopback port, stopped on demand."""

    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen([shutil.which("redis-server"), "--port", str(self.port), "--save", "",
                                         "--appendonly", "no", "--bind", "127.0.0.1"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class HealthTest(TenantTestCase):
    def setUp(self):
        self.redis = RedisProcess()
        self.addCleanup(self.redis.stop)
        heartbeat("node-1")
        leader.acquire(leader.SCHEDULER_LEASE, "test-scheduler", 15)

    def readyz(self):
        with override_settings(REDIS_URL=self.redis.url, REDIS_CONNECTION={"URL": self.redis.url}):
            response = Client().get("/readyz")
        return response.status_code, response.json()

    def test_healthz_answers_without_credentials(self):
        response = Client().get("/healthz")
        self.assertEqual((response.status_code, response.json()), (200, {"status": "ok"}))

    def test_ready_when_everything_answers(self):
        status, body = self.readyz()
        self.assertEqual(status, 200, body)
        self.assertEqual(body["checks"], {"database": "ok", "redis": "ok", "scheduler": "ok", "delivery_node": "ok"})

    def test_redis_stopped_is_503(self):
        self.redis.stop()
        status, body = self.readyz()
        self.assertEqual(status, 503)
        self.assertEqual(body["checks"]["redis"], "fail")
        self.assertEqual(body["checks"]["database"], "ok")

    def test_no_live_node_is_503(self):
        DeliveryNode.objects.update(last_heartbeat=timezone.now() - timedelta(minutes=10))
        status, body = self.readyz()
        self.assertEqual((status, body["checks"]["delivery_node"]), (503, "fail"))

    def test_scheduler_silent_for_a_minute_is_503(self):
        from deliveryhub.models import Lease

        Lease.objects.filter(name=leader.SCHEDULER_LEASE).update(renewed_at=timezone.now() - timedelta(seconds=90))
        status, body = self.readyz()
        self.assertEqual((status, body["checks"]["scheduler"]), (503, "fail"))

    def test_readyz_reveals_no_details(self):
        self.redis.stop()
        _, body = self.readyz()
        text = str(body)
        self.assertNotIn(str(self.redis.port), text)
        self.assertNotIn("127.0.0.1", text)
        self.assertEqual(set(body), {"status", "checks"})

