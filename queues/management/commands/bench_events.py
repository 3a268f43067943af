"""
`manage.py bench_events [--events N] [--messages M]` (`make bench-events`): the event stream and webhooks, measured.

On the configured database (use an empty one: it creates a tenant, messages and N events), it prints:
- the sequencer's rate (events numbered per second, in chunks of EVENT_STREAM_CHUNK);
- `GET /api/v1/events/` latency (p50/p95 over repeated requests through the test client, a page of 100) unfiltered
  and with each filter of the issue (type, time range, recipient, tag, message), near the head and deep in the stream;
- webhook delivery to a loopback receiver that verifies every signature with `standardwebhooks`: events per second,
  POSTs, and whether every event arrived exactly once.
It does not measure the delivery rate with and without a webhook: that needs `make bench`'s sink and workers (see
docs/webhooks.md, "Limits and notes").
"""

import time
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test import Client, override_settings
from django.utils import timezone

from deliveryhub import services as core
from deliveryhub.choices import Role
from queues.choices import EventKind
from queues.models import Message, MessageEvent, Webhook
from queues.services import Submission, accept_messages
from queues.testing import make_sending_domain
from queues.webhooks import dispatch, services, stream
from queues.webhooks.testing import Receiver

KINDS = [EventKind.DELIVERED, EventKind.DEFERRED, EventKind.BOUNCED, EventKind.OPENED]
REQUESTS = 40
INSERT_CHUNK = 20000


def _percentiles(samples):
    samples = sorted(samples)
    return samples[len(samples) // 2] * 1000, samples[max(int(len(samples) * 0.95) - 1, 0)] * 1000


class Command(BaseCommand):
    help = "Measure the event stream, GET /api/v1/events/ and webhook delivery (use an empty database)."

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=200_000)
        parser.add_argument("--messages", type=int, default=2000)

    def handle(self, *args, events, messages, **options):
        tenant = core.create_tenant(f"bench-{int(time.time())}", "Events bench")
        make_sending_domain(tenant, f"{tenant.slug}.test")
        _, key = core.create_api_key(tenant=tenant, name="bench", role=Role.ADMIN)
        subs = [Submission(sender=f"app@{tenant.slug}.test", to=[f"user{i}@example.com"], subject="s", text="t",
                           tag=f"tag{i % 10}") for i in range(messages)]  # fmt: skip
        ids = []
        for start in range(0, messages, 500):
            ids += [m.pk for m in accept_messages(tenant, subs[start : start + 500]).messages]
        now = timezone.now()
        started = time.monotonic()
        for start in range(0, events, INSERT_CHUNK):
            with transaction.atomic():
                MessageEvent.objects.bulk_create([
                    MessageEvent(message_id=ids[i % len(ids)], kind=KINDS[i % len(KINDS)],
                                 time=now - timedelta(seconds=events - i), data={"code": 250})
                    for i in range(start, min(start + INSERT_CHUNK, events))
                ])  # fmt: skip
        self.stdout.write(f"inserted {events} events in {time.monotonic() - started:.1f} s")
        started, numbered = time.monotonic(), 0
        with override_settings(EVENT_STREAM_SETTLE_SECONDS=0):
            while batch := stream.sequence_events():
                numbered += batch
        elapsed = time.monotonic() - started
        with connection.cursor() as cursor:  # what autovacuum does after a load: the planner knows the tables
            if connection.vendor == "postgresql":
                cursor.execute("ANALYZE")
        self.stdout.write(f"sequencer: {numbered} events in {elapsed:.1f} s = {numbered / elapsed:,.0f} events/s")

        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        message = Message.objects.filter(pk=ids[0]).first()
        middle = (now - timedelta(seconds=events // 2)).isoformat()
        cases = {
            "(baseline: GET /api/v1/webhooks/)": None,
            "no filter (oldest first)": {},
            "deep cursor": {"after": str(stream.head() - 200)},
            "type=bounced": {"type": "bounced"},
            "type=delivered,bounced since": {"type": "delivered,bounced", "since": middle},
            "until": {"until": middle},
            "recipient": {"recipient": message.rcpt_to},
            "tag": {"tag": "tag3"},
            "message": {"message": str(message.uuid)},
        }
        for name, params in cases.items():
            samples = []
            for _ in range(REQUESTS):
                t0 = time.monotonic()
                response = client.get("/api/v1/webhooks/" if params is None else "/api/v1/events/", params or {})
                samples.append(time.monotonic() - t0)
                assert response.status_code == 200, response.content
            p50, p95 = _percentiles(samples)
            self.stdout.write(f"GET /api/v1/events/ {name:36s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
                              f"({len(response.json()['results'])} results)")  # fmt: skip

        sent = min(events, 20000)
        with Receiver() as receiver, override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=True, RQ_IS_ASYNC=False):
            webhook, secret = services.create_webhook(tenant, url=receiver.url)
            receiver.secrets.append(secret)
            Webhook.objects.filter(pk=webhook.pk).update(cursor=stream.head() - sent)
            started = time.monotonic()
            while dispatch.dispatch():
                pass
            elapsed = time.monotonic() - started
            got = [e["id"] for e in receiver.events()]
        exactly_once = len(got) == len(set(got)) == sent and receiver.bad_signatures == 0
        self.stdout.write(f"webhook: {len(got)} events in {len(receiver.bodies)} POSTs in {elapsed:.1f} s = "
                          f"{len(got) / elapsed:,.0f} events/s; every event once with a valid signature: "
                          f"{exactly_once}")  # fmt: skip
