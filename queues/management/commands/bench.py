"""
`manage.py bench` (`make bench`): intake, then the delivery pipeline end to end on this machine, and the raw SMTP limit.

Everything runs against a throw-away SQLite (or BENCH_DATABASE_URL) database and Redis database under a temporary
directory (this command re-runs itself with that environment), so the development database is never touched:

1. intake, measured on its own (`queues/intake_bench.py`; alone with `--intake-only`, `make bench-intake`): batch
   intake in process and over HTTP (gunicorn), single-message response times with 20 clients, with their targets;
2. delivery: N single-recipient messages of ~5 KB taken in through the API (`POST /api/v1/messages/batch/`), then
   two worker processes (`rqworker delivery-bench`, DeliveryWorker) and the scheduler, DKIM RSA-2048, two source
   IPs (127.0.0.2, 127.0.0.3), to Postfix's `smtp-sink` on loopback via a route;
3. the raw limit: `smtp-source -d` into the same sink with the same message size;
4. again, against an aiosmtpd sink (own process) that waits 50 ms before its RCPT and end-of-data replies;
5. step 2 again with message bodies encrypted at rest (ENCRYPT_MESSAGE_BODIES on in intake and workers), in the
   same run, so that the cost of encryption is the difference between two runs on the same machine at the same
   moment; plus the cipher alone (AES-256-GCM of one body, encrypt and decrypt).

Prints the intake figures, then delivery rate, p50/p99 accept-to-delivered latency, peak worker memory and the CPU
time per message of the workers, the scheduler and the sink (which shares this machine: aiosmtpd's costs about a
millisecond a message, smtp-sink a tenth of that); last line: `delivery <X> msg/s = <Y>% of raw SMTP <Z> msg/s`.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from queues import intake_bench

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
BODY_BYTES = 5 * 1024  # message size
LATENCY_SINK_DELAY = 0.05  # seconds before RCPT and end-of-data replies in the second run
NODE = "bench"
SCHEDULE_EVERY = 1.0  # seconds between scheduler runs during the benchmark
# smtp-sink serves at most 256 connections at once by default (-m) and leaves the rest queued in the kernel, unanswered:
# each worker keeps up to DELIVERY_BATCH_CONCURRENCY connections per source IP open (pooled for reuse), so two workers
# and two IPs at 100 exceed it and new connections wait for a greeting until SMTP_CONNECT_TIMEOUT. Let it serve them
# all, and queue enough pending connects (listen backlog) that none is dropped (a dropped SYN costs 1 s, then 3 s).
SINK_MAX_CONNECTIONS = 2048
SINK_BACKLOG = 2048
TIMEOUT_SECONDS = 900  # a run that has not finished by then fails


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise CommandError(f"Nothing listens on 127.0.0.1:{port}")


def peak_rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Command(BaseCommand):
    help = "Benchmark the delivery pipeline end to end (intake, workers, DKIM, SMTP) against the raw SMTP limit."

    def add_arguments(self, parser):
        parser.add_argument("--messages", type=int, default=20000)
        parser.add_argument("--latency-messages", type=int, default=5000, help="messages for the 50 ms run (0: skip)")
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--intake-only", action="store_true", help="only the intake figures (no SMTP sink needed)")
        parser.add_argument("--intake-messages", type=int, default=10000, help="messages for each batch intake run")
        parser.add_argument("--intake-requests", type=int, default=3000, help="single-message requests (20 clients)")
        parser.add_argument("--encrypted-messages", type=int, default=None,
                            help="messages for the run with encrypted bodies (default: --messages; 0: skip)")
        parser.add_argument("--run", help=argparse_suppress())  # internal: the inner run's work directory

    def handle(self, *args, messages, latency_messages, workers, intake_only, intake_messages, intake_requests,
               encrypted_messages=None, run=None, **options):  # fmt: skip
        encrypted = messages if encrypted_messages is None else encrypted_messages
        self.intake_args = {"batch_count": intake_messages, "single_count": intake_requests, "intake_only": intake_only}
        if run:
            return self.inner(Path(run), messages, latency_messages, workers, encrypted)
        for tool in (SMTP_SINK, SMTP_SOURCE):
            if not intake_only and not Path(tool).exists():
                raise CommandError(f"{tool} is missing: install Postfix (apt-get install postfix).")
        workdir = Path(tempfile.mkdtemp(prefix="deliveryhub-bench-"))
        # Production mode (DEBUG off), as deployed: with DEBUG on, Django records every SQL query in memory.
        import secrets

        database_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{workdir / 'bench.sqlite3'}"
        env = {**os.environ, "DATABASE_URL": database_url, "DELIVERYHUB_NODE": NODE,
               "DELIVERYHUB_VAR_DIR": str(workdir), "DELIVERYHUB_DEMO_MODE": "false", "DEBUG": "false",
               "DELIVERYHUB_SECRET_KEY": secrets.token_urlsafe(50), "DELIVERYHUB_DATA_KEY": secrets.token_urlsafe(50),
               "DELIVERYHUB_PSEUDONYM_KEY": secrets.token_urlsafe(50),
               "DELIVERYHUB_LOG_LEVEL": "WARNING"}  # fmt: skip
        redis_proc = None
        if not os.environ.get("REDIS_URL"):
            from deliveryhub import embedded_redis

            socket_path = workdir / "redis.sock"
            # Redis logs to a file: the figures stay the last lines printed.
            redis_log = open(workdir / "redis.log", "w")
            redis_proc = embedded_redis.start(socket_path, workdir, persist=False, stdout=redis_log,
                                              stderr=subprocess.STDOUT)
            env["REDIS_URL"] = f"unix://{socket_path}"
        try:
            cmd = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench", "--run", str(workdir),
                   "--messages", str(messages), "--latency-messages", str(latency_messages),
                   "--workers", str(workers), "--intake-messages", str(intake_messages),
                   "--intake-requests", str(intake_requests), "--encrypted-messages", str(encrypted),
                   *(["--intake-only"] if intake_only else [])]  # fmt: skip
            done = subprocess.run(cmd, env=env, cwd=settings.BASE_DIR)
            if done.returncode:
                raise CommandError(f"The benchmark failed (exit {done.returncode}); files kept in {workdir}")
        finally:
            if redis_proc is not None:
                from deliveryhub import embedded_redis

                embedded_redis.stop(redis_proc)
        shutil.rmtree(workdir, ignore_errors=True)

    # -- the inner run (own database, own Redis db) ---------------------------------------------------------------

    def inner(self, workdir, count, latency_count, worker_count, encrypted_count):
        import django_rq
        from django.core.management import call_command

        from deliveryhub import services as core
        from deliveryhub.choices import Role
        from queues.choices import MessageStatus
        from queues.models import Message, Route
        from queues.testing import make_sending_domain, make_sending_ips

        call_command("migrate", verbosity=0)
        django_rq.get_connection("delivery").flushdb()
        tenant = core.create_tenant("bench", "Bench")
        make_sending_domain(tenant, "bench.example")
        make_sending_ips(("127.0.0.2", "127.0.0.3"), node_name=NODE)
        _, key = core.create_api_key(tenant=tenant, name="bench", role=Role.ADMIN)

        for line in intake_bench.run(workdir, key, batch_count=self.intake_args["batch_count"],
                                     single_count=self.intake_args["single_count"], body_bytes=BODY_BYTES,
                                     free_port=free_port):  # fmt: skip
            self.stdout.write(line)
        if self.intake_args["intake_only"]:
            return
        # The intake runs' messages are not the delivery runs' work: the scheduler must leave them alone.
        Message.objects.filter(tag__startswith=intake_bench.TAG_PREFIX).update(status=MessageStatus.CANCELLED)
        port = free_port()
        sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", "-m", str(SINK_MAX_CONNECTIONS), f"127.0.0.1:{port}",
                                 str(SINK_BACKLOG)], stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_port(port)
            raw = self.raw_limit(port, count)
            route = Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=port)
            result = self.run_once(workdir, key, count, worker_count, "smtp-sink", sink.pid)
            encrypted = self.run_encrypted(workdir, key, encrypted_count, worker_count, sink.pid)
        finally:
            sink.terminate()
        self.report("smtp-sink (loopback)", result)
        if encrypted:
            self.report("smtp-sink (loopback), bodies encrypted at rest", encrypted)
        if latency_count:
            lat_port = free_port()
            code = (f"import time; from deliveryhub.testing.smtp import SMTPSink; "
                    f"s = SMTPSink(port={lat_port}, reply_delay={LATENCY_SINK_DELAY}).start(); "
                    f"[time.sleep(3600) for _ in iter(int, 1)]")  # fmt: skip
            lat_sink = subprocess.Popen([sys.executable, "-c", code], cwd=settings.BASE_DIR)
            try:
                wait_port(lat_port)
                route.port = lat_port
                route.save()
                lat = self.run_once(workdir, key, latency_count, worker_count, "50ms", lat_sink.pid)
            finally:
                lat_sink.terminate()
            self.report(f"aiosmtpd sink with {int(LATENCY_SINK_DELAY * 1000)} ms replies", lat)
        self.stdout.write(f"raw SMTP (smtp-source -d, {BODY_BYTES} bytes): {raw:.0f} msg/s")
        if encrypted:
            self.report_encryption(result, encrypted)
        rate = result["delivery_rate"]
        self.stdout.write(f"delivery {rate:.0f} msg/s = {100 * rate / raw:.1f}% of raw SMTP {raw:.0f} msg/s")

    def run_encrypted(self, workdir, key, count, worker_count, sink_pid):
        """The smtp-sink run again with ENCRYPT_MESSAGE_BODIES on (this process writes bodies, workers read them)."""
        if not count:
            return None
        from django.test import override_settings

        os.environ["DELIVERYHUB_ENCRYPT_MESSAGE_BODIES"] = "true"  # the worker processes inherit it
        try:
            with override_settings(ENCRYPT_MESSAGE_BODIES=True):
                return self.run_once(workdir, key, count, worker_count, "encrypted", sink_pid)
        finally:
            del os.environ["DELIVERYHUB_ENCRYPT_MESSAGE_BODIES"]

    def report_encryption(self, plain, encrypted):
        from deliveryhub.crypto import decrypt_bytes, encrypt_bytes

        body = os.urandom(BODY_BYTES)
        rounds = 20000
        started = time.perf_counter()
        tokens = [encrypt_bytes(body) for _ in range(rounds)]
        encrypt_us = 1e6 * (time.perf_counter() - started) / rounds
        started = time.perf_counter()
        for token in tokens:
            decrypt_bytes(token)
        decrypt_us = 1e6 * (time.perf_counter() - started) / rounds

        def change(key):
            return 100 * (encrypted[key] / plain[key] - 1)

        self.stdout.write(
            f"body encryption (same run): delivery {plain['delivery_rate']:.0f} → "
            f"{encrypted['delivery_rate']:.0f} msg/s ({change('delivery_rate'):+.1f}%), worker CPU per message "
            f"{plain['worker_cpu_ms']:.2f} → {encrypted['worker_cpu_ms']:.2f} ms; AES-256-GCM of a {BODY_BYTES}-byte "
            f"body: encrypt {encrypt_us:.1f} µs, decrypt {decrypt_us:.1f} µs"
        )

    def raw_limit(self, port, count):
        started = time.monotonic()
        subprocess.run([SMTP_SOURCE, "-d", "-s", "20", "-l", str(BODY_BYTES), "-m", str(count), f"127.0.0.1:{port}"],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        return count / (time.monotonic() - started)

    def intake(self, key, count, tag):
        """The messages a delivery run sends (`count` of them, tagged `tag`): the bulk API's path, in process."""
        intake_bench.batch_in_process(key, count, intake_bench.message_body(BODY_BYTES - 600), tag)

    def run_once(self, workdir, key, count, worker_count, tag, sink_pid):
        from django.db.models import Max
        from django.utils import timezone

        from queues.choices import MessageStatus
        from queues.delivery import scheduler
        from queues.models import Message

        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        workers = [
            subprocess.Popen([*manage, "rqworker", scheduler.queue_name(NODE), "--worker-class",
                              "queues.delivery.worker.DeliveryWorker", "--name", f"bench-{tag}-{n}-{os.getpid()}"],
                             stdout=open(workdir / f"worker-{tag}-{n}.log", "w"), stderr=subprocess.STDOUT)
            for n in range(worker_count)
        ]  # fmt: skip
        self.intake(key, count, tag)  # meanwhile the workers start and wait
        messages = Message.objects.filter(tag=tag)
        started, started_at = time.monotonic(), timezone.now()
        deadline = started + TIMEOUT_SECONDS
        peaks = {}
        cpu_before = {pid: intake_bench.cpu_seconds(pid) or 0.0 for pid in [proc.pid for proc in workers] + [sink_pid]}
        own_before = time.process_time()  # this process schedules (scheduler.schedule) and polls
        try:
            while time.monotonic() < deadline:
                scheduler.schedule()
                for proc in workers:
                    peaks[proc.pid] = peak_rss_mb(proc.pid) or peaks.get(proc.pid)
                if not messages.exclude(status=MessageStatus.DELIVERED).exists():
                    break
                time.sleep(SCHEDULE_EVERY)
            else:
                raise CommandError(f"Not all messages delivered after {TIMEOUT_SECONDS}s: {self.states(messages)}")
            # Until the last delivery, not until this loop noticed it (up to SCHEDULE_EVERY later).
            elapsed = (messages.aggregate(last=Max("delivered_at"))["last"] - started_at).total_seconds()
            worker_cpu = sum((intake_bench.cpu_seconds(proc.pid) or 0.0) - cpu_before[proc.pid] for proc in workers)
            sink_cpu = (intake_bench.cpu_seconds(sink_pid) or 0.0) - cpu_before[sink_pid]
            scheduler_cpu = time.process_time() - own_before
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(30)
        latencies = sorted(
            (done - created).total_seconds() for done, created in messages.values_list("delivered_at", "created")
        )
        return {
            "messages": count,
            "delivery_rate": count / elapsed,
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "peak_worker_mb": max((p for p in peaks.values() if p), default=0),
            "worker_cpu_ms": 1000 * worker_cpu / count,
            "sink_cpu_ms": 1000 * sink_cpu / count,
            "scheduler_cpu_ms": 1000 * scheduler_cpu / count,
        }

    def states(self, messages):
        from django.db.models import Count

        return json.dumps(dict(messages.values_list("status").annotate(n=Count("id"))))

    def report(self, label, r):
        self.stdout.write(
            f"{label}: {r['messages']} messages · delivery "
            f"{r['delivery_rate']:.0f} msg/s · accept→delivered p50 {r['p50']:.1f} s, p99 {r['p99']:.1f} s · "
            f"peak worker memory {r['peak_worker_mb']:.0f} MB · CPU per message: workers {r['worker_cpu_ms']:.2f} ms, "
            f"scheduler {r['scheduler_cpu_ms']:.2f} ms, sink {r['sink_cpu_ms']:.2f} ms"
        )


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
