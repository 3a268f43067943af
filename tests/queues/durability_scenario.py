"""
A worker process SIGKILLed while one message of its batch waits for its end-of-data reply (run by
tests/queues/test_durability.py in a subprocess with its own file-based SQLite database). One batch of 30, one
connection: the first 19 are accepted, the 20th stalls; the worker is killed once the 19 are in the database (or
after a bound), then a second worker delivers what is left. Prints one JSON line.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 30
STALLED = 19  # index of the message whose end-of-data reply never comes (the first time)
RECORD_BOUND = 30  # seconds to wait for the accepted ones to be recorded before killing anyway
DEADLINE = 120


def main(workdir):
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "deliveryhub.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import django_rq

    from deliveryhub import services as core
    from deliveryhub.testing.smtp import DATA_OK, STALL, SMTPSink
    from queues.choices import MessageStatus
    from queues.delivery import scheduler
    from queues.models import DeliveryAttempt, Message, Route
    from queues.services import Submission, accept_messages
    from queues.testing import make_sending_domain, make_sending_ips

    django_rq.get_connection("delivery").flushdb()
    tenant = core.create_tenant("durable", "Durable")
    make_sending_domain(tenant, "mail-a.test")
    make_sending_ips(("127.0.0.2",))
    sink = SMTPSink().start()
    Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=sink.port)
    rcpts = [f"u{i:02d}@example.com" for i in range(MESSAGES)]
    sink.script_data(rcpts[STALLED], [STALL, DATA_OK])
    accept_messages(tenant, Submission(sender="app@mail-a.test", to=rcpts, subject="durable", text="x" * 500))

    def start_worker(name):
        log = open(Path(workdir) / f"{name}.log", "w")
        return subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", scheduler.queue_name(os.environ["DELIVERYHUB_NODE"]),
             "--worker-class", "queues.delivery.worker.DeliveryWorker", "--name", f"{name}-{os.getpid()}"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    workers = [start_worker("w1")]
    killed, accepted_at_kill, delivered_at_kill = False, 0, 0
    deadline = time.monotonic() + DEADLINE
    delivered = Message.objects.filter(status=MessageStatus.DELIVERED)
    try:
        while time.monotonic() < deadline:
            scheduler.schedule()
            if not killed and sink.stalled:
                bound = time.monotonic() + RECORD_BOUND
                while delivered.count() < len(sink.messages) and time.monotonic() < bound:
                    time.sleep(0.1)
                accepted_at_kill, delivered_at_kill = len(sink.messages), delivered.count()
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait()
                killed = True
                workers.append(start_worker("w2"))
            if killed and not Message.objects.exclude(status=MessageStatus.DELIVERED).exists():
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
    at_sink = [m.rcpt_tos[0] for m in sink.messages]
    print(json.dumps({
        "killed": killed,
        "accepted_at_kill": accepted_at_kill,
        "delivered_at_kill": delivered_at_kill,
        "statuses": statuses,
        "sink_total": len(at_sink),
        "sink_unique": len(set(at_sink)),
        "possible_duplicates": DeliveryAttempt.objects.filter(possible_duplicate=True).count(),
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
