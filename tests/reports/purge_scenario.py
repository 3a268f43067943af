"""
The retention purge running while real workers deliver: OLD final messages (and their attempts, events and bodies)
past their periods, FRESH messages queued and being delivered by two worker processes; `manage.py purge_retention`
runs in its own processes, again and again, with small chunks, until the send is over. Nothing undelivered may be
lost: every fresh message arrives once and every old one is gone.

Run by tests/reports/test_retention.py in a subprocess with its own file-based SQLite database:
`python tests/reports/purge_scenario.py <workdir>`. Prints one JSON line with the outcome.
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OLD = 3000
FRESH = 3000
DEADLINE = 300


def main(workdir):
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "deliveryhub.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)

    import django_rq

    from deliveryhub import services as core
    from deliveryhub.testing.smtp import SMTPSink
    from queues.choices import AttemptStatus, MessageStatus
    from queues.delivery import scheduler
    from queues.models import DeliveryAttempt, Message, MessageContent, Route
    from queues.services import Submission, accept_messages
    from queues.testing import make_sending_domain, make_sending_ips

    django_rq.get_connection("delivery").flushdb()
    tenant = core.create_tenant("purge", "Purge")
    make_sending_domain(tenant, "mail-a.test")
    make_sending_ips(("127.0.0.2",))
    sink = SMTPSink().start()
    Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=sink.port)

    def accept(prefix, count):
        ids = []
        for start in range(0, count, 500):
            to = [f"{prefix}{i}@example.com" for i in range(start, min(count, start + 500))]
            submission = Submission(sender="app@mail-a.test", to=to, subject=prefix, text="x" * 500)
            ids += [m.pk for m in accept_messages(tenant, submission).messages]
        return ids

    old = accept("old", OLD)
    long_ago = timezone.now() - timedelta(days=100)
    Message.objects.filter(pk__in=old).update(status=MessageStatus.DELIVERED, created=long_ago, updated=long_ago)
    MessageContent.objects.filter(messages__in=old).update(created=long_ago)
    DeliveryAttempt.objects.bulk_create([DeliveryAttempt(message_id=pk, time=long_ago, status=AttemptStatus.DELIVERED,
                                                         code=250) for pk in old])  # fmt: skip
    fresh = accept("fresh", FRESH)

    def start(name, *args):
        log = open(Path(workdir) / f"{name}.log", "w")
        return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    queue = scheduler.queue_name(os.environ["DELIVERYHUB_NODE"])
    workers = [
        start(f"w{n}", "rqworker", queue, "--worker-class", "queues.delivery.worker.DeliveryWorker",
              "--name", f"w{n}-{os.getpid()}")
        for n in (1, 2)
    ]  # fmt: skip
    purges, purge = 0, None
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            scheduler.schedule()
            if purge is None or purge.poll() is not None:
                purge = start(f"purge{purges}", "purge_retention")
                purges += 1
            if not Message.objects.filter(pk__in=fresh).exclude(status=MessageStatus.DELIVERED).exists():
                break
            time.sleep(0.3)
        if purge is not None:
            purge.wait(120)
        final = start("purge-final", "purge_retention")
        final.wait(120)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink.stop()
    statuses = {}
    for status in Message.objects.filter(pk__in=fresh).values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    at_sink = [m.rcpt_tos[0] for m in sink.messages]
    print(json.dumps({
        "fresh": FRESH, "old": OLD, "fresh_statuses": statuses, "sink_total": len(at_sink),
        "sink_unique": len(set(at_sink)), "old_left": Message.objects.filter(pk__in=old).count(),
        "old_attempts_left": DeliveryAttempt.objects.filter(message_id__in=old).count(), "purge_runs": purges + 1,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
