"""
Two delivery nodes side by side on one machine: node-a owns 127.0.0.2, node-b owns 127.0.0.3, one shared pool.

Run by tests/queues/test_e2e.py in a subprocess with its own file-based SQLite database (the worker processes must
share it): `python tests/queues/multinode_scenario.py <workdir>`. Starts one real `rqworker delivery-<node>`
process per node (DELIVERYHUB_NODE=<node>), schedules from this process until everything is delivered, and prints
one JSON line with the outcome: statuses, the source addresses the sink saw and every (node, source IP) pair
of the recorded delivery attempts.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 200
OWNERSHIP = {"node-a": "127.0.0.2", "node-b": "127.0.0.3"}
DEADLINE = 60  # seconds for everything to be delivered


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
    from ippools.testing import make_ip, make_node, make_pool
    from queues.choices import MessageStatus
    from queues.delivery import scheduler
    from queues.models import DeliveryAttempt, Message, Route
    from queues.services import Submission, accept_messages
    from queues.testing import make_sending_domain

    redis = django_rq.get_connection("delivery")
    redis.flushdb()
    tenant = core.create_tenant("nodes", "Nodes")
    make_sending_domain(tenant, "mail-a.test")
    ips = [make_ip(address, make_node(node)) for node, address in OWNERSHIP.items()]
    make_pool("shared", all_tenants=True, members=[(ip, 100) for ip in ips])
    sink = SMTPSink().start()
    Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=sink.port)
    accept_messages(tenant, Submission(sender="app@mail-a.test", to=[f"u{i}@example.com" for i in range(MESSAGES)],
                                       subject="two nodes", text="hello"))  # fmt: skip

    def start_worker(node):
        log = open(Path(workdir) / f"{node}.log", "w")
        return subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", scheduler.queue_name(node),
             "--worker-class", "queues.delivery.worker.DeliveryWorker", "--name", f"{node}-{os.getpid()}"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DELIVERYHUB_NODE": node},
        )  # fmt: skip

    workers = [start_worker(node) for node in OWNERSHIP]
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            scheduler.schedule()
            if not Message.objects.exclude(status=MessageStatus.DELIVERED).exists():
                break
            time.sleep(0.2)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink.stop()
    statuses = {}
    for status in Message.objects.values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    pairs = {}
    for node, address in DeliveryAttempt.objects.values_list("node", "source_ip"):
        pairs[f"{node} {address}"] = pairs.get(f"{node} {address}", 0) + 1
    print(json.dumps({
        "statuses": statuses,
        "sink_total": len(sink.messages),
        "sink_sources": sorted({m.peer[0] for m in sink.messages}),
        "attempt_pairs": pairs,
        "ownership": OWNERSHIP,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
