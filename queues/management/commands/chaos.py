"""`manage.py chaos` (`make chaos`): fault scenarios on loopback against the real engine, each with figures and a
verdict.

Like `manage.py bench`, it runs in a database and a Redis of its own (a temporary SQLite file, the embedded Redis
unless REDIS_URL is set) with production settings, two real worker processes (`rqworker … DeliveryWorker`) and the
scheduler ticking in this process. The receivers are `deliveryhub.testing.faultsmtp.FaultSMTP` sinks, which count a
message only when their own end-of-data reply was a 2xx. Each scenario reconciles what was accepted, what the
database recorded and what the receivers took:

    lost                     accepted, neither delivered nor still being retried at the end (never allowed)
    delivered, not received  recorded delivered that no receiver took (must be 0)
    duplicates               received more than once (must stay within what was in flight)
    stuck                    rows left in `sending` at the end

Scenarios: replies injected after STARTTLS and after RCPT, a receiver that drops the connection after DATA, one that
stalls after the end of data, tarpits beside a normal domain (the normal domain must keep ≥ 90% of its solo rate),
rate limits to one source IP. The exit status is 1 when any verdict fails. Worker kill storms, Redis flushes and
database disconnects are not in this suite yet (the durability work of issue 12 §2).
"""

import collections
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

NODE = "chaos"
GMAIL_RATE = (
    "421 4.7.0 Our system has detected an unusual rate of unsolicited mail originating from your IP address. To "
    "protect our users from spam, mail sent from your IP address has been temporarily rate limited."
)
ENV = {  # short timeouts so that faults show in seconds, not minutes
    "DELIVERYHUB_SMTP_CONNECT_TIMEOUT": "3", "DELIVERYHUB_SMTP_COMMAND_TIMEOUT": "5",
    "DELIVERYHUB_SMTP_DATA_TIMEOUT": "5", "DELIVERYHUB_THROTTLE_SUSPEND_SECONDS": "2",
    "DELIVERYHUB_BATCH_SIZE": "100", "DELIVERYHUB_RETRY_JITTER": "0",
}  # fmt: skip


class Command(BaseCommand):
    help = "Fault scenarios on loopback against real workers, each with figures and a verdict (make chaos)."

    def add_arguments(self, parser):
        parser.add_argument("--messages", type=int, default=200, help="messages per scenario")
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--budget", type=float, default=60, help="seconds a scenario may take")
        parser.add_argument("--only", action="append", default=[], help="run only these scenarios")
        parser.add_argument("--run", help=argparse_suppress())

    def handle(self, *args, messages, workers, budget, only, run, **options):
        if run:
            return self.inner(Path(run), messages, workers, budget, only)
        workdir = Path(tempfile.mkdtemp(prefix="deliveryhub-chaos-"))
        env = {**os.environ, **ENV, "DATABASE_URL": f"sqlite:///{workdir / 'chaos.sqlite3'}", "DELIVERYHUB_NODE": NODE,
               "DELIVERYHUB_VAR_DIR": str(workdir), "DELIVERYHUB_DEMO_MODE": "false", "DEBUG": "false",
               "DELIVERYHUB_SECRET_KEY": secrets.token_urlsafe(50), "DELIVERYHUB_DATA_KEY": secrets.token_urlsafe(50),
               "DELIVERYHUB_PSEUDONYM_KEY": secrets.token_urlsafe(50), "DELIVERYHUB_LOG_LEVEL": "WARNING"}  # fmt: skip
        redis_proc = None
        if not os.environ.get("REDIS_URL"):
            from deliveryhub import embedded_redis

            redis_proc = embedded_redis.start(workdir / "redis.sock", workdir, persist=False,
                                              stdout=open(workdir / "redis.log", "w"), stderr=subprocess.STDOUT)
            env["REDIS_URL"] = f"unix://{workdir / 'redis.sock'}"
        try:
            cmd = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "chaos", "--run", str(workdir),
                   "--messages", str(messages), "--workers", str(workers), "--budget", str(budget),
                   *(arg for name in only for arg in ("--only", name))]  # fmt: skip
            done = subprocess.run(cmd, env=env, cwd=settings.BASE_DIR)
        finally:
            if redis_proc is not None:
                from deliveryhub import embedded_redis

                embedded_redis.stop(redis_proc)
        if done.returncode:
            raise CommandError(f"chaos: a verdict failed (exit {done.returncode}); files kept in {workdir}")
        shutil.rmtree(workdir, ignore_errors=True)

    # -- the inner run --------------------------------------------------------------------------------------------

    def inner(self, workdir, count, worker_count, budget, only):
        import django_rq
        from django.core.management import call_command

        from deliveryhub import services as core
        from queues.delivery import scheduler
        from queues.testing import make_sending_domain, make_sending_ips

        call_command("migrate", verbosity=0)
        django_rq.get_connection("delivery").flushdb()
        self.tenant = core.create_tenant("chaos", "Chaos")
        make_sending_domain(self.tenant, "chaos.example")
        make_sending_ips(("127.0.0.2", "127.0.0.3"), node_name=NODE)
        self.count, self.budget = count, budget
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        workers = [
            subprocess.Popen([*manage, "rqworker", scheduler.queue_name(NODE), "--worker-class",
                              "queues.delivery.worker.DeliveryWorker", "--name", f"chaos-{n}-{os.getpid()}"],
                             stdout=open(workdir / f"worker-{n}.log", "w"), stderr=subprocess.STDOUT)
            for n in range(worker_count)
        ]  # fmt: skip
        self.in_flight = worker_count * settings.DELIVERY_BATCH_CONCURRENCY
        scenarios = [
            ("starttls-injection", self.starttls_injection),
            ("rcpt-injection", self.rcpt_injection),
            ("drop-after-data", self.drop_after_data),
            ("stall-after-data", self.stall_after_data),
            ("tarpits-beside-normal", self.tarpits),
            ("rate-limit", self.rate_limit),
        ]
        failed = []
        try:
            for name, scenario in scenarios:
                if only and name not in only:
                    continue
                self.stdout.write(f"== {name}")
                ok = scenario(name)
                self.stdout.write(f"   verdict: {'PASS' if ok else 'FAIL'}")
                if not ok:
                    failed.append(name)
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(30)
        if failed:
            self.stdout.write(f"failed: {', '.join(failed)}")
            sys.exit(1)

    # -- machinery ------------------------------------------------------------------------------------------------

    def send(self, tag, domain, count):
        from queues.services import Submission, accept_messages

        rows = []
        for start in range(0, count, 50):
            to = [f"{tag}-{i}@{domain}" for i in range(start, min(count, start + 50))]
            submission = Submission(sender="Chaos <app@chaos.example>", to=to, subject=tag, text="Hello", tag=tag)
            rows += accept_messages(self.tenant, submission).messages
        return rows

    def route(self, domain, sink):
        from queues.models import Route

        Route.objects.create(tenant=self.tenant, pattern=domain, host="127.0.0.1", port=sink.port)

    def drive(self, tag, until_done):
        """Tick the scheduler (making deferred rows due at once) until `until_done()` or the budget; seconds."""
        from django.utils import timezone

        from queues.choices import MessageStatus
        from queues.delivery import scheduler
        from queues.models import Message

        started = time.monotonic()
        while time.monotonic() - started < self.budget:
            Message.objects.filter(tag=tag, status=MessageStatus.DEFERRED).update(next_attempt_at=timezone.now())
            scheduler.schedule()
            if until_done():
                break
            time.sleep(0.5)
        return time.monotonic() - started

    def all_final(self, tag):
        from queues.choices import FINAL_STATUSES
        from queues.models import Message

        return lambda: not Message.objects.filter(tag=tag).exclude(status__in=FINAL_STATUSES).exists()

    def reconcile(self, tag, sinks, *, expect_all_delivered=True):
        from queues.choices import MessageStatus
        from queues.models import DeliveryAttempt, Message

        rows = list(Message.objects.filter(tag=tag).values_list("rcpt_to", "status"))
        ours = {rcpt for rcpt, _ in rows}
        received = collections.Counter(r for sink in sinks for m in sink.messages for r in m.rcpt_tos if r in ours)
        delivered = {rcpt for rcpt, status in rows if status == MessageStatus.DELIVERED}
        states = collections.Counter(status for _, status in rows)
        not_received = delivered - set(received)
        duplicates = sum(n - 1 for n in received.values() if n > 1)
        stuck = states.get(MessageStatus.SENDING, 0)
        lost = [r for r, s in rows if s not in (MessageStatus.DELIVERED, MessageStatus.DEFERRED, MessageStatus.QUEUED)]
        attempts = DeliveryAttempt.objects.filter(message__tag=tag).count()
        self.stdout.write(
            f"   accepted {len(rows)}, states {dict(states)}, attempts {attempts}, received {sum(received.values())} "
            f"({len(received)} unique), delivered-not-received {len(not_received)}, duplicates {duplicates} "
            f"(in flight ≤ {self.in_flight}), stuck {stuck}, lost {len(lost)}"
        )
        ok = not not_received and not lost and duplicates <= self.in_flight and not stuck
        if expect_all_delivered:
            ok = ok and len(delivered) == len(rows)
        return ok

    # -- scenarios ------------------------------------------------------------------------------------------------

    def faulty(self, name, sink, *, expect_all_delivered=True):
        from deliveryhub.testing.faultsmtp import FaultSMTP  # noqa: F401  (the sinks below)

        domain = f"{name}.test"
        with sink:
            self.route(domain, sink)
            self.send(name, domain, self.count)
            elapsed = self.drive(name, self.all_final(name))
            self.stdout.write(f"   {elapsed:.1f} s, connections {sink.connections}, peak {sink.peak_connections}")
            return self.reconcile(name, [sink], expect_all_delivered=expect_all_delivered)

    def starttls_injection(self, name):
        """`220 Ready` + `250 SIZE 10` in one write after STARTTLS: nothing may be recorded delivered (every
        session is dropped; the messages stay deferred)."""
        from deliveryhub.testing.faultsmtp import FaultSMTP

        sink = FaultSMTP(tls=True, pipelining=True)
        sink.script("STARTTLS", "220 Ready\r\n250 SIZE 10")
        self.budget, budget = 10, self.budget
        try:
            return self.faulty(name, sink, expect_all_delivered=False)
        finally:
            self.budget = budget

    def rcpt_injection(self, name):
        """An extra 250 after the first 30 RCPTs: those are out of step (deferred), retried, then delivered."""
        from deliveryhub.testing.faultsmtp import FaultSMTP

        sink = FaultSMTP(pipelining=True)
        sink.script("RCPT", ["250 2.1.5 OK\r\n250 2.1.5 OK"] * 30 + ["250 2.1.5 OK"])
        return self.faulty(name, sink)

    def drop_after_data(self, name):
        from deliveryhub.testing.faultsmtp import DROP, FaultSMTP

        sink = FaultSMTP(pipelining=True)
        sink.script("END", [DROP] * 20 + ["250 2.0.0 OK queued"])
        return self.faulty(name, sink)

    def stall_after_data(self, name):
        from deliveryhub.testing.faultsmtp import SILENT, FaultSMTP

        sink = FaultSMTP(pipelining=True)
        sink.script("END", [SILENT] * 10 + ["250 2.0.0 OK queued"])
        return self.faulty(name, sink)

    def rate_limit(self, name):
        """Gmail's rate-limit reply to the first 3 RCPTs: the pair is slowed and suspended, the rest waits and goes."""
        from deliveryhub.testing.faultsmtp import FaultSMTP

        sink = FaultSMTP(pipelining=True)
        sink.script("RCPT", [GMAIL_RATE] * 3 + ["250 2.1.5 OK"])
        with sink:
            self.route("gmail.com", sink)
            self.send(name, "gmail.com", self.count)
            elapsed = self.drive(name, self.all_final(name))
            self.stdout.write(f"   {elapsed:.1f} s, rate-limit replies sent {min(3, sink.count('RCPT'))}, "
                              f"RCPTs {sink.count('RCPT')}, connections {sink.connections}")  # fmt: skip
            return self.reconcile(name, [sink])

    def tarpits(self, name):
        """Five tarpit domains (accept TCP, never greet) beside a normal one: once each tarpit was tried (its circuit
        breaker open), the normal domain keeps ≥ 90% of its solo rate."""
        from django.db.models import Max, Min

        from deliveryhub.testing.faultsmtp import SILENT, FaultSMTP
        from queues.choices import MessageStatus
        from queues.models import Message

        def rate(tag):
            rows = Message.objects.filter(tag=tag, status=MessageStatus.DELIVERED)
            span = rows.aggregate(first=Min("created"), last=Max("delivered_at"))
            if not span["last"]:
                return 0.0
            return rows.count() / max(0.001, (span["last"] - span["first"]).total_seconds())

        with FaultSMTP(pipelining=True) as normal:
            self.route("normal.test", normal)
            warm = f"{name}-warm-up"  # the workers' first batches (imports, connections) are not the solo rate
            self.send(warm, "normal.test", 50)
            self.drive(warm, self.all_final(warm))
            solo = f"{name}-solo"
            self.send(solo, "normal.test", self.count)
            self.drive(solo, self.all_final(solo))
            solo_rate = rate(solo)
            tarpits = [FaultSMTP(greeting=SILENT).start() for _ in range(5)]
            try:
                for index, tarpit in enumerate(tarpits):
                    self.route(f"tarpit{index}.test", tarpit)
                    self.send(f"{name}-tarpit", f"tarpit{index}.test", 20)
                # First encounter: every worker pays one connect timeout per tarpit (its probe connection), then the
                # breakers are open. Measured, then the normal domain runs beside more tarpit mail.
                first = self.drive(f"{name}-tarpit", lambda: not Message.objects.filter(
                    tag=f"{name}-tarpit", status__in=(MessageStatus.QUEUED, MessageStatus.SENDING)).exists())
                self.stdout.write(f"   first encounter with 5 tarpits: {first:.1f} s until each was tried once")
                for index in range(len(tarpits)):
                    self.send(f"{name}-tarpit2", f"tarpit{index}.test", 20)
                beside = f"{name}-beside"
                self.send(beside, "normal.test", self.count)
                self.drive(beside, self.all_final(beside))
                beside_rate = rate(beside)
                connections = [tarpit.connections for tarpit in tarpits]
            finally:
                for tarpit in tarpits:
                    tarpit.stop()
            ratio = beside_rate / solo_rate if solo_rate else 0.0
            self.stdout.write(f"   normal domain solo {solo_rate:.0f} msg/s, beside 5 tarpits {beside_rate:.0f} msg/s "
                              f"({ratio:.0%}); tarpit connections {connections}")  # fmt: skip
            ok = self.reconcile(beside, [normal]) and ratio >= 0.9
            return ok


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
