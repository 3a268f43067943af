"""
A delivery run with real worker processes, a worker killed with SIGKILL mid-batch and Redis flushed mid-run.

Run by tests/queues/test_e2e.py in a subprocess with its own file-based SQLite database (worker processes
must share it): `python tests/queues/crash_scenario.py <workdir>`. Prints one JSON line with the outcome.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 300
BATCH = 10
KILL_AFTER = 40  # messages at the sink before the first worker is killed
FLUSH_AFTER = 120  # messages at the sink before Redis is flushed
DEADLINE = 120  # seconds for everything to be delivered


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

    redis = django_rq.get_connection("delivery")
    redis.flushdb()
    tenant = core.create_tenant("crash", "Crash")
    make_sending_domain(tenant, "mail-a.test")
    make_sending_ips(("127.0.0.2",))
    sink = SMTPSink(reply_delay=0.02).start()
    Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=sink.port)
    for start in range(0, MESSAGES, 100):
        accept_messages(tenant, Submission(sender="app@mail-a.test", to=[f"u{i}@example.com" for i in
                                                                          range(start, start + 100)],
                                           subject="crash test", text="x" * 2000))  # fmt: skip

    def start_worker(name):
        log = open(Path(workdir) / f"{name}.log", "w")
        return subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", scheduler.queue_name(os.environ["DELIVERYHUB_NODE"]),
             "--worker-class", "rq.worker.SimpleWorker", "--name", f"{name}-{os.getpid()}"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    workers = [start_worker("w1"), start_worker("w2")]
    killed = flushed = False
    in_flight_at_kill = 0
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            scheduler.schedule()
            received = len(sink.messages)
            if not killed and received >= KILL_AFTER:
                in_flight_at_kill = Message.objects.filter(status=MessageStatus.SENDING).count()
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait()
                killed = True
            if killed and not flushed and received >= FLUSH_AFTER:
                redis.flushdb()
                flushed = True
            pending = Message.objects.exclude(status=MessageStatus.DELIVERED).count()
            if pending == 0 and killed and flushed:
                break
            time.sleep(0.3)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink.stop()
    statuses = {}
    for status in Message.objects.values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    delivered = set(Message.objects.filter(status=MessageStatus.DELIVERED).values_list("mail_from", flat=True))
    at_sink = [m.mail_from for m in sink.messages]
    print(json.dumps({
        "statuses": statuses,
        "delivered": len(delivered),
        "sink_total": len(at_sink),
        "sink_unique": len(set(at_sink)),
        "sink_matches_db": set(at_sink) == delivered,
        "killed": killed,
        "flushed": flushed,
        "in_flight_at_kill": in_flight_at_kill,
        "batch_size": BATCH,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
