"""Roll-ups equal a recount from attempts and events after a real delivery run (scheduler, RQ worker, aiosmtpd sink
scripted to answer 250/421/550, ARF complaints and a DSN through the inbound report parser); counted once however
often the job runs; settled rows only; rebuildable for a range; the job can be switched off."""

from collections import Counter
from datetime import timedelta
from io import StringIO

from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.smtp import SMTPSink
from queues.delivery import mx, state
from queues.models import DeliveryAttempt, Message
from queues.testing import make_sending_domain, make_sending_ips
from reports import rollups
from reports.models import HourRollup, MinuteRollup, ReplyHour, ReplyTotal, RollupCursor, RollupTotal

from ..queues.helpers import flush_redis
from .monitoring_helpers import mixed_run, recount, rolled_up, route_everything_to


def later(seconds=60):
    return timezone.now() + timedelta(seconds=seconds)


@override_settings(DEMO_MODE=False)
class RollupTest(TenantTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.domain = make_sending_domain(cls.tenant_a, "mail-a.test")
        cls.domain_b = make_sending_domain(cls.tenant_b, "mail-b.test")
        cls.node, cls.ips, cls.pool = make_sending_ips(("127.0.0.2", "127.0.0.3"))

    def setUp(self):
        flush_redis()
        mx.clear_cache()
        self.addCleanup(state.close)
        self.sink = SMTPSink().start()
        self.addCleanup(self.sink.stop)
        route_everything_to(self.tenant_a, self.sink)
        route_everything_to(self.tenant_b, self.sink)

    def run_mail(self):
        mixed_run(self, self.tenant_a, self.sink)
        mixed_run(self, self.tenant_b, self.sink, sender="App <app@mail-b.test>")

    def assert_matches_recount(self):
        expected = recount()
        for model in (MinuteRollup, HourRollup, RollupTotal):
            got = rolled_up(model)
            for key, value in expected.items():
                if key[2] != "accepted":
                    self.assertEqual(got[key], value, f"{model.__name__} {key}")
            self.assertEqual(sum(got.values()), sum(v for k, v in expected.items() if k[2] != "accepted"), model)
            accepted = Counter()
            for row in model.objects.values("tenant_id", "provider", "accepted"):
                accepted[(row["tenant_id"], row["provider"], "accepted")] += row["accepted"]
            self.assertEqual(+accepted, Counter({k: v for k, v in expected.items() if k[2] == "accepted"}))

    def test_rollups_equal_a_recount_after_a_real_run(self):
        self.run_mail()
        self.assertEqual(DeliveryAttempt.objects.filter(status="bounced").count(), 6)
        self.assertEqual(DeliveryAttempt.objects.filter(status="deferred").count(), 2)  # the script is used up by A
        read = rollups.roll_up(now=later())
        self.assertEqual(read["attempts"], DeliveryAttempt.objects.count())
        self.assert_matches_recount()
        expected = recount()
        complaints = sum(v for k, v in expected.items() if k[0] == self.tenant_a.pk and k[2] == "complained")
        self.assertEqual(complaints, 2)
        # A second run finds nothing new: nothing is counted twice.
        self.assertEqual(rollups.roll_up(now=later()), {"attempts": 0, "events": 0, "messages": 0})
        self.assert_matches_recount()
        # Dimensions: the pool, both source IPs, the sending domain, this node.
        rows = HourRollup.objects.filter(tenant_id=self.tenant_a.pk, attempts__gt=0)
        self.assertEqual(set(rows.values_list("pool_id", flat=True)), {self.pool.pk})
        self.assertEqual(set(rows.values_list("domain_id", flat=True)), {self.domain.pk})
        self.assertTrue(set(rows.values_list("source_ip", flat=True)) <= {"127.0.0.2", "127.0.0.3"})
        self.assertEqual(set(rows.values_list("provider", flat=True)), {"google", "microsoft", "yahoo", "other"})
        # Latency: one bucketed sample per delivered message; bytes per delivered message.
        total = {name: sum(r[name] for r in HourRollup.objects.values(*rollups.LATENCY_FIELDS, "delivered"))
                 for name in (*rollups.LATENCY_FIELDS, "delivered")}  # fmt: skip
        self.assertEqual(sum(total[name] for name in rollups.LATENCY_FIELDS), total["delivered"])
        # Replies: the 550s and the DSN as bounces with their codes; the 421s as deferrals.
        replies = Counter()
        for row in ReplyHour.objects.values("tenant_id", "status", "code", "enhanced_code", "count"):
            replies[(row["tenant_id"], row["status"], row["code"], row["enhanced_code"])] += row["count"]
        self.assertEqual(replies[(self.tenant_a.pk, "bounced", 550, "5.1.1")], 4)  # three 550s + one DSN
        self.assertEqual(replies[(self.tenant_a.pk, "deferred", 421, "4.7.0")], 2)
        self.assertEqual(sum(ReplyTotal.objects.filter(tenant_id=self.tenant_b.pk).values_list("count", flat=True)),
                         DeliveryAttempt.objects.filter(message__tenant=self.tenant_b).count() + 1)  # fmt: skip

    def test_rows_younger_than_the_settle_time_wait_for_the_next_run(self):
        self.run_mail()
        self.assertEqual(rollups.roll_up(now=timezone.now() - timedelta(hours=1)),
                         {"attempts": 0, "events": 0, "messages": 0})  # fmt: skip
        self.assertFalse(HourRollup.objects.exists())
        rollups.roll_up(now=later())
        self.assert_matches_recount()

    def test_small_chunks_count_the_same(self):
        self.run_mail()
        with override_settings(ROLLUP_CHUNK=3):
            rollups.roll_up(now=later())
        self.assert_matches_recount()
        self.assertEqual(RollupCursor.objects.get(name="attempts").last_id, DeliveryAttempt.objects.latest("id").id)

    def test_rollups_off_counts_nothing(self):
        self.run_mail()
        with override_settings(ROLLUPS_ENABLED=False):
            self.assertEqual(rollups.roll_up(now=later()), {})
        self.assertFalse(HourRollup.objects.exists())

    def test_rebuild_restores_damaged_rollups_and_keeps_totals_right(self):
        self.run_mail()
        rollups.roll_up(now=later())
        # As if the job had passed rows over (a transaction that committed after the settle time): nothing counted.
        for model in (MinuteRollup, HourRollup, RollupTotal, ReplyHour, ReplyTotal):
            model.objects.all().delete()
        out = StringIO()
        since = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
        call_command("rebuild_rollups", "--since", since, stdout=out)
        self.assertIn("Rebuilt", out.getvalue())
        # The running totals were right all along: a rebuild moves them by what it changes in the hour rows of the
        # range (recount - damaged), so they are right again after the damaged hour rows are replaced.
        self.assert_matches_recount()
        self.assertTrue(AuditEntry.objects.filter(action="rollups.rebuild").exists())

    def test_rebuild_of_a_range_leaves_other_hours_alone(self):
        self.run_mail()
        rollups.roll_up(now=later())
        old = timezone.now() - timedelta(days=3)
        HourRollup.objects.create(bucket=rollups.hour_of(old), tenant_id=self.tenant_a.pk, provider="google",
                                  delivered=7, attempts=7)  # fmt: skip
        call_command("rebuild_rollups", "--since", "6h", stdout=StringIO())
        self.assertEqual(HourRollup.objects.get(bucket=rollups.hour_of(old)).delivered, 7)
        self.assert_matches_recount_ignoring(old)

    def assert_matches_recount_ignoring(self, old):
        HourRollup.objects.filter(bucket=rollups.hour_of(old)).delete()
        self.assert_matches_recount()

    def test_rebuild_bad_input_is_an_error_and_changes_nothing(self):
        for args in (["--since", "yesterday"], ["--since", "2d", "--until", "3d"], ["--since", "2999-01-01"]):
            with self.assertRaises(CommandError):
                call_command("rebuild_rollups", *args, stdout=StringIO())
        self.assertFalse(AuditEntry.objects.filter(action="rollups.rebuild").exists())

    def test_prune_keeps_48_hours_of_minutes(self):
        now = timezone.now()
        for hours in (1, 47, 49):
            MinuteRollup.objects.create(bucket=rollups.minute_of(now - timedelta(hours=hours)), tenant_id=1)
        HourRollup.objects.create(bucket=rollups.hour_of(now - timedelta(days=401)), tenant_id=1)
        HourRollup.objects.create(bucket=rollups.hour_of(now - timedelta(days=399)), tenant_id=1)
        self.assertEqual(rollups.prune(now), 2)
        self.assertEqual(MinuteRollup.objects.count(), 2)
        self.assertEqual(HourRollup.objects.count(), 1)

    def test_messages_accepted_are_counted_with_their_bytes(self):
        from ..queues.helpers import send

        send(self.tenant_a, ["a@gmail.com", "b@gmail.com"])
        rollups.roll_up(now=later())
        row = HourRollup.objects.get(tenant_id=self.tenant_a.pk)
        size = Message.objects.filter(tenant=self.tenant_a).first().content.size
        self.assertEqual((row.accepted, row.accepted_bytes, row.provider), (2, 2 * size, "google"))


def test_reply_samples_keep_no_addresses():
    assert rollups.reply_sample("550 5.1.1 <bob@example.com>: Recipient address rejected") == (
        "550 5.1.1 <address>: Recipient address rejected"
    )
    assert rollups.reply_sample("User unknown: alice@b.test") == "User unknown: <address>"
