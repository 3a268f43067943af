"""
Scheduler failover during a real send: two `manage.py scheduler` processes (one active, one standing by), two worker
processes (`rqworker delivery-<node> default`: batches and the system jobs that schedule them), MESSAGES messages to
an aiosmtpd sink. Once KILL_AFTER messages have arrived the active scheduler gets SIGKILL; the standby must take
the lease over and the send must finish with every message delivered exactly once (a dead scheduler has no
messages in flight: the duplicate bound of docs/delivery.md is a worker's batch, and here no worker dies).

Run by tests/queues/test_failover.py in a subprocess with its own file-based SQLite database (the processes share
it): `python tests/queues/failover_scenario.py <workdir>`. Prints one JSON line with the outcome.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = int(os.environ.get("FAILOVER_MESSAGES", "20000"))
KILL_AFTER = int(os.environ.get("FAILOVER_KILL_AFTER", "2000"))
DEADLINE = int(os.environ.get("FAILOVER_DEADLINE", "600"))  # seconds for everything to be delivered


def main(workdir):
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "deliveryhub.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import django_rq

    from deliveryhub import services as core
    from deliveryhub.testing.smtp import SMTPSink
    from queues.choices import MessageStatus
    from queues.delivery import scheduler
    from queues.models import Message, Route
    from queues.services import Submission, accept_messages
    from queues.testing import make_sending_domain, make_sending_ips

    django_rq.get_connection("delivery").flushdb()
    tenant = core.create_tenant("failover", "Failover")
    # The schedulers run every periodic job, DNS re-verification among them (no resolver answers here): the domain
    # may send whatever its DNS says.
    domain = make_sending_domain(tenant, "mail-a.test")
    type(domain).objects.filter(pk=domain.pk).update(allow_unverified_sending=True)
    make_sending_ips(("127.0.0.2", "127.0.0.3"))
    sink = SMTPSink().start()
    Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=sink.port)
    intake_started = time.monotonic()
    for start in range(0, MESSAGES, 1000):
        accept_messages(tenant, Submission(sender="app@mail-a.test", to=[f"u{i}@example.com" for i in
                                                                         range(start, min(MESSAGES, start + 1000))],
                                           subject="failover test", text="x" * 1000))  # fmt: skip
    db_path = os.environ["DATABASE_URL"].removeprefix("sqlite:///")
    intake_seconds = time.monotonic() - intake_started

    def lease():
        with sqlite3.connect(db_path, timeout=30) as db:
            return db.execute("SELECT holder, token FROM deliveryhub_lease WHERE name = 'scheduler'").fetchone()

    def start(name, *args):
        log = open(Path(workdir) / f"{name}.log", "w")
        return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    node_queue = scheduler.queue_name(os.environ["DELIVERYHUB_NODE"])
    # DeliveryWorker: a SimpleWorker that keeps the node's heartbeat fresh (the scheduler feeds live nodes only).
    workers = [
        start(f"w{n}", "rqworker", node_queue, "default", "--worker-class", "queues.delivery.worker.DeliveryWorker",
              "--name", f"w{n}-{os.getpid()}")
        for n in (1, 2)
    ]  # fmt: skip
    schedulers = {name: start(name, "scheduler", "--skip-checks") for name in ("s1", "s2")}
    procs = [*workers, *schedulers.values()]
    killed = takeover_seconds = None
    first_holder = new_holder = first_token = new_token = None
    started = time.monotonic()
    deadline = started + DEADLINE
    try:
        while time.monotonic() < deadline:
            current = lease()
            if current and current[0] and first_holder is None:
                first_holder, first_token = current
            received = len(sink.messages)
            if killed is None and first_holder and received >= KILL_AFTER:
                active = next(p for p in schedulers.values() if f":{p.pid}:" in first_holder)
                active.send_signal(signal.SIGKILL)
                active.wait()
                killed = time.monotonic()
            if killed is not None and takeover_seconds is None and current and current[0] != first_holder:
                takeover_seconds = time.monotonic() - killed
                new_holder, new_token = current
            if not Message.objects.exclude(status=MessageStatus.DELIVERED).exists() and killed is not None:
                break
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink.stop()
    statuses = {}
    for status in Message.objects.values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    at_sink = [m.mail_from for m in sink.messages]
    delivered = set(Message.objects.filter(status=MessageStatus.DELIVERED).values_list("mail_from", flat=True))
    print(json.dumps({
        "messages": MESSAGES, "statuses": statuses, "sink_total": len(at_sink), "sink_unique": len(set(at_sink)),
        "sink_matches_db": set(at_sink) == delivered, "killed": killed is not None,
        "takeover_seconds": takeover_seconds, "first_token": first_token, "new_token": new_token,
        "standby_took_over": bool(new_holder) and new_holder != first_holder,
        "seconds": time.monotonic() - started, "intake_seconds": intake_seconds,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
