"""A lost delivery node: its IP addresses move to another node in one action (API or command), and the mail it held
is delivered by the other node's worker once the scheduled leases run out — nothing lost, from the same source IP."""

import io

from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from rq import SimpleWorker

from deliveryhub import services as core
from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.smtp import SMTPSink
from ippools.choices import NodeStatus
from ippools.models import DeliveryNode, IPAddress
from ippools.testing import make_ip, make_node, make_pool
from queues.delivery import scheduler
from queues.models import Message, Route
from queues.testing import make_sending_domain

from ..queues.helpers import flush_redis, send


class NodeLossTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.op_key = core.create_api_key(tenant=None, name="ops")[1]
        make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.lost, cls.spare = make_node("node-lost"), make_node("node-spare")
        cls.ip = make_ip("127.0.0.2", cls.lost)
        make_pool("shared", all_tenants=True, members=[(cls.ip, 100)])

    def setUp(self):
        flush_redis()
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        Route.objects.create(tenant=self.tenant_a, pattern="*", host="127.0.0.1", port=self.sink.port)

    def schedule(self):
        with self.captureOnCommitCallbacks(execute=True):  # batches are enqueued after commit
            scheduler.schedule()

    def queued_on(self, node):
        return len(scheduler.get_delivery_queue(node).get_job_ids())

    def test_moved_ips_deliver_what_the_lost_node_held(self):
        send(self.tenant_a, [f"u{i}@example.com" for i in range(5)])
        self.schedule()
        self.assertGreater(self.queued_on("node-lost"), 0)  # then the node dies with its batches unclaimed
        response = self.api(self.op_key).post(f"/api/v1/nodes/{self.lost.pk}/move-ips/", {"to": "node-spare"},
                                              format="json")  # fmt: skip
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["addresses"], ["127.0.0.2"])
        self.assertEqual(IPAddress.objects.get(pk=self.ip.pk).node, self.spare)
        self.assertEqual(DeliveryNode.objects.get(pk=self.lost.pk).status, NodeStatus.DRAINING)
        self.assertTrue(AuditEntry.objects.filter(action="node.ips_moved", object_id=str(self.lost.pk)).exists())
        Message.objects.update(lease_expires=timezone.now() - timezone.timedelta(seconds=1))  # the leases ran out
        self.schedule()
        self.assertGreater(self.queued_on("node-spare"), 0)
        with override_settings(NODE_NAME="node-spare"):
            queue = scheduler.get_delivery_queue("node-spare")
            SimpleWorker([queue], connection=queue.connection).work(burst=True)
        self.assertEqual(set(Message.objects.values_list("status", flat=True)), {"delivered"})
        self.assertEqual(sorted(m.rcpt_tos[0] for m in self.sink.messages), [f"u{i}@example.com" for i in range(5)])
        self.assertEqual({m.peer[0] for m in self.sink.messages}, {"127.0.0.2"})

    def test_only_operators_and_sensible_targets(self):
        url = f"/api/v1/nodes/{self.lost.pk}/move-ips/"
        self.assertEqual(self.api(self.alice_key).post(url, {"to": "node-spare"}, format="json").status_code, 403)
        for target in ("node-lost", "nowhere", ""):
            response = self.api(self.op_key).post(url, {"to": target}, format="json")
            self.assertEqual(response.status_code, 400, response.content)
            self.assertIn("to", response.json()["error"]["fields"])
        self.assertEqual(IPAddress.objects.get(pk=self.ip.pk).node, self.lost)

    def test_command(self):
        out = io.StringIO()
        call_command("move_node_ips", "node-lost", "node-spare", stdout=out)
        self.assertIn("Moved 1 address(es) from node-lost to node-spare: 127.0.0.2", out.getvalue())
        with self.assertRaisesMessage(CommandError, "No delivery node 'ghost'"):
            call_command("move_node_ips", "ghost", "node-spare")
