"""Shared set-up of the monitoring tests: a delivery run with deliveries, deferrals, bounces, complaints and a
bounce report, through the real scheduler and an in-process RQ worker to an aiosmtpd sink; an independent recount."""

from collections import Counter

from django.db.models import Count

from ippools.providers import provider_for
from queues.delivery import scheduler
from queues.inbound_reports import process_report
from queues.models import DeliveryAttempt, Message, MessageEvent, Route

from ..queues.helpers import make_due, send, work_queue

ARF = (
    "From: fbl@isp.test\r\nTo: x\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
    "--b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
    "--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n\r\n--b--\r\n"
)
DSN = (
    "From: MAILER-DAEMON@isp.test\r\nTo: x\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
    "--b\r\nContent-Type: text/plain\r\n\r\nGone.\r\n"
    "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; isp.test\r\n\r\n"
    "Final-Recipient: rfc822; x@outlook.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--b--\r\n"
)


def route_everything_to(tenant, sink):
    Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=sink.port)


def deliver(testcase, rounds=1):
    for _ in range(rounds):
        with testcase.captureOnCommitCallbacks(execute=True):
            scheduler.schedule()
        work_queue()


def mixed_run(testcase, tenant, sink, *, sender="App <app@mail-a.test>"):
    """12 recipients at three providers: 3 bounce (550), 2 are deferred once (421) then delivered, the rest delivered;
    two delivered ones complain (ARF) and one delivered one bounces later (DSN)."""
    for address in ("gone1@gmail.com", "gone2@outlook.com", "gone3@example.com"):
        sink.script(address, "550 5.1.1 No such user here")
    for address in ("slow1@gmail.com", "slow2@yahoo.com"):
        sink.script(address, ["421 4.7.0 Try again later", "250 OK"])
    recipients = ["gone1@gmail.com", "gone2@outlook.com", "gone3@example.com", "slow1@gmail.com", "slow2@yahoo.com"]
    domains = ["gmail.com", "gmail.com", "outlook.com", "yahoo.com", "example.com", "example.com", "gmail.com"]
    recipients += [f"ok{i}@{domain}" for i, domain in enumerate(domains)]
    send(tenant, recipients, sender=sender)
    deliver(testcase)
    make_due()
    deliver(testcase)
    delivered = list(Message.objects.filter(tenant=tenant, status="delivered").order_by("id"))
    for message in delivered[:2]:
        process_report([message.mail_from], ARF.encode())
    process_report([delivered[2].mail_from], DSN.encode())
    return recipients


def recount():
    """Counts from the source rows alone, by (tenant, provider, counter): what every roll-up must add up to."""
    counts = Counter()
    for tenant_id, status, rcpt_domain, mx_host, n in (
        DeliveryAttempt.objects.values_list("message__tenant_id", "status", "message__rcpt_domain", "mx_host")
        .annotate(n=Count("id"))
        .order_by()
    ):
        provider = provider_for(rcpt_domain, [mx_host])
        counts[(tenant_id, provider, "attempts")] += n
        counts[(tenant_id, provider, status)] += n
    kinds = {"complained": "complained", "dsn": "bounced", "unsubscribed": "unsubscribed", "expired": "expired"}
    for event in MessageEvent.objects.filter(kind__in=kinds).select_related("message"):
        last = DeliveryAttempt.objects.filter(message=event.message).order_by("-id").first()
        provider = provider_for(event.message.rcpt_domain, [last.mx_host] if last else [])
        counts[(event.message.tenant_id, provider, kinds[event.kind])] += 1
    for tenant_id, rcpt_domain, n in (
        Message.objects.values_list("tenant_id", "rcpt_domain").annotate(n=Count("id")).order_by()
    ):
        counts[(tenant_id, provider_for(rcpt_domain), "accepted")] += n
    return +counts


def rolled_up(model):
    """The same counts from a roll-up table (minute, hour or running totals)."""
    counts = Counter()
    names = ("attempts", "delivered", "deferred", "bounced", "complained", "unsubscribed", "expired")
    for row in model.objects.values("tenant_id", "provider", *names):
        for name in names:
            counts[(row["tenant_id"], row["provider"], name)] += row[name]
    return counts


def rolled_up_accepted(model):
    counts = Counter()
    for row in model.objects.values("tenant_id", "domain_id", "accepted"):
        counts[row["tenant_id"]] += row["accepted"]
    return counts
