"""
The deliverability and compliance report of one tenant for one period, as a signed PDF or a CSV.

What it holds (`collect()`): the authentication posture of each sending domain (SPF, DKIM keys with their sizes and
rotation dates, DMARC policy, MTA-STS, TLS policy) from the last DNS verification; volumes and the delivery, bounce,
complaint and unsubscribe rates against the Gmail/Yahoo bulk-sender thresholds; suppression activity;
data-subject requests handled; configuration changes from the audit log; the audit chain's head hash and
verification result; retention purges. `start_report()` enqueues `ComplianceReportRunner` on the low queue; the
file's SHA-256 goes to the audit log (`report.compliance`) like an audit export's.
"""

import csv
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from deliveryhub import audit
from deliveryhub.choices import Action, Area
from deliveryhub.constants import QUEUE_LOW
from deliveryhub.exports import csv_safe
from deliveryhub.jobs import JobFailed, JobRunner
from deliveryhub.models import AuditChainHead, AuditEntry
from deliveryhub.pdf import BAD_COLOUR, OK_COLOUR, Story
from deliveryhub.permissions import Principal
from deliveryhub.signing import file_sha256, sign_pdf
from domains.choices import DkimKeyState, RecordKind
from domains.models import DkimKey, DnsCheck, SendingDomain
from queues.choices import EventKind, MessageStatus
from queues.models import Message, MessageEvent, Suppression

from .choices import ReportFormat
from .constants import BOUNCE_RATE_LIMIT, REPORT_DIR, SPAM_RATE_LIMIT, SPAM_RATE_TARGET, UNSUBSCRIBE_RATE_WATCH
from .models import DataRequest, PurgeRunItem

MAX_PERIOD_DAYS = 400
PDF_CHANGES_SHOWN = 200  # configuration changes listed in the PDF (the CSV has them all)
CONFIG_ACTIONS = ("create", "update", "delete")  # CRUD entries; verbs (dotted actions) are counted separately
POSTURE_KINDS = (RecordKind.SPF, RecordKind.DKIM, RecordKind.DMARC, RecordKind.MTA_STS, RecordKind.TLS_RPT)


@dataclass
class Report:
    """Everything one report shows, gathered once and written as PDF or CSV."""

    tenant: object
    start: datetime
    end: datetime
    generated: datetime
    domains: list = field(default_factory=list)
    volumes: dict = field(default_factory=dict)
    rates: list = field(default_factory=list)  # (name, value, limit, assessment)
    suppressions: dict = field(default_factory=dict)
    suppression_total: int = 0
    data_requests: list = field(default_factory=list)  # (kind, status, count)
    changes: list = field(default_factory=list)  # audit entries
    change_counts: list = field(default_factory=list)  # (object type, action, count)
    chain: object = None
    head_seq: int = 0
    head_hash: str = ""
    purges: list = field(default_factory=list)  # (kind, count)


def period_bounds(start, end):
    """Dates → aware UTC datetimes [start 00:00, end 00:00); ValidationError when the period makes no sense."""
    if end <= start:
        raise ValidationError({"period_end": "The period ends after it starts."})
    if (end - start).days > MAX_PERIOD_DAYS:
        raise ValidationError({"period_end": f"A report covers at most {MAX_PERIOD_DAYS} days."})
    return datetime.combine(start, time.min, UTC), datetime.combine(end, time.min, UTC)


def _rate(numerator, denominator):
    return numerator / denominator if denominator else 0.0


def collect(tenant, start, end):
    """Gather the report of `tenant` for [start, end) (aware datetimes)."""
    report = Report(tenant=tenant, start=start, end=end, generated=timezone.now())
    checks = {}
    for check in DnsCheck.objects.filter(tenant=tenant, kind__in=POSTURE_KINDS):
        checks.setdefault(check.domain_id, {})[check.kind] = check
    keys = {}
    for key in DkimKey.objects.filter(tenant=tenant).exclude(state=DkimKeyState.RETIRED).order_by("created"):
        keys.setdefault(key.domain_id, []).append(key)
    for domain in SendingDomain.objects.filter(tenant=tenant).order_by("name"):
        domain_checks = checks.get(domain.pk, {})
        report.domains.append({
            "domain": domain,
            "status": domain.get_status_display(),
            "checks": {kind: domain_checks.get(kind) for kind in POSTURE_KINDS},
            "keys": keys.get(domain.pk, []),
            "dmarc_policy": domain.dmarc_policy,
            "mta_sts": domain.mta_sts_mode or "off",
            "tls_policy": domain.get_tls_policy_display(),
        })  # fmt: skip

    messages = Message.objects.filter(tenant=tenant, created__gte=start, created__lt=end)
    by_status = dict(messages.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    total = sum(by_status.values())
    delivered = by_status.get(MessageStatus.DELIVERED, 0)
    bounced = by_status.get(MessageStatus.BOUNCED, 0)
    events = MessageEvent.objects.filter(message__tenant=tenant, time__gte=start, time__lt=end)
    complaints = events.filter(kind=EventKind.COMPLAINED).count()
    suppressions = Suppression.objects.filter(tenant=tenant, created__gte=start, created__lt=end)
    by_reason = dict(suppressions.values_list("reason").annotate(n=Count("id")).values_list("reason", "n"))
    unsubscribes = by_reason.get("unsubscribe", 0)
    report.volumes = {"accepted": total, **{status: by_status.get(status, 0) for status in MessageStatus.values}}
    attempted = delivered + bounced
    spam = _rate(complaints, delivered)
    report.rates = [
        ("Delivery rate (delivered / delivered + bounced)", _rate(delivered, attempted), None, ""),
        ("Bounce rate (bounced / delivered + bounced)", _rate(bounced, attempted), BOUNCE_RATE_LIMIT,
         "within" if _rate(bounced, attempted) < BOUNCE_RATE_LIMIT else "above"),
        ("Spam complaint rate (complaints / delivered)", spam, SPAM_RATE_LIMIT,
         "within" if spam < SPAM_RATE_TARGET else "watch" if spam < SPAM_RATE_LIMIT else "above"),
        ("Unsubscribe rate (unsubscribes / delivered)", _rate(unsubscribes, delivered), UNSUBSCRIBE_RATE_WATCH,
         "within" if _rate(unsubscribes, delivered) < UNSUBSCRIBE_RATE_WATCH else "watch"),
    ]  # fmt: skip
    report.volumes["complaints"] = complaints
    report.volumes["unsubscribes"] = unsubscribes
    report.suppressions = by_reason
    report.suppression_total = Suppression.objects.filter(tenant=tenant).count()

    requests = DataRequest.objects.filter(tenant=tenant, created__gte=start, created__lt=end)
    report.data_requests = list(requests.values_list("kind", "status").annotate(n=Count("id")).order_by("kind"))

    entries = AuditEntry.objects.filter(tenant=tenant, time__gte=start, time__lt=end)
    config = entries.filter(Q(action__in=CONFIG_ACTIONS) | Q(action__contains="."))
    report.change_counts = list(
        config.values_list("object_type", "action").annotate(n=Count("id")).order_by("object_type", "action")
    )
    report.changes = config.order_by("seq")
    report.chain = audit.verify_chain()
    head = AuditChainHead.objects.filter(pk=1).first()
    report.head_seq, report.head_hash = (head.seq, head.hash) if head else (0, "")
    purged = Counter()
    for kind, count in PurgeRunItem.objects.filter(
        tenant=tenant, run__started__gte=start, run__started__lt=end, run__dry_run=False
    ).values_list("kind", "count"):
        purged[kind] += count
    report.purges = sorted(purged.items())
    return report


def _pct(value):
    return f"{value * 100:.3f} %"


def _date(value):
    return value.astimezone(UTC).strftime("%Y-%m-%d") if value else "—"


def _check_text(check):
    return "not checked" if check is None else check.get_status_display()


def render_pdf(report, job):
    tenant = report.tenant
    story = Story(title=f"Deliverability and compliance report — {tenant.name}",
                  footer=f"DeliveryHub compliance report — {tenant.slug} — {_date(report.start)} to "
                         f"{_date(report.end - timedelta(seconds=1))} — job {job.uuid}", landscape_pages=True)
    story.h1("Deliverability and compliance report")
    story.table(["", ""], [
        ["Tenant", f"{tenant.name} ({tenant.slug})"],
        ["Period (UTC)", f"{_date(report.start)} to {_date(report.end - timedelta(seconds=1))} inclusive"],
        ["Generated", report.generated.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")],
        ["Generated by", job.params.get("requested_by", "system")],
        ["Audit chain", str(report.chain)],
        ["Audit chain head", f"#{report.head_seq} {report.head_hash}"],
    ], widths=[1, 5], mono_columns=())  # fmt: skip
    story.para("Signed by the platform key (PAdES). Thresholds: Gmail and Yahoo bulk-sender requirements (spam rate "
               "below 0.3 %, ideally below 0.1 %; SPF and DKIM on every message; a DMARC policy; one-click "
               "unsubscribe for marketing mail); bounce rate below 2 % by common practice.", "small")  # fmt: skip

    story.h2("Authentication posture of the sending domains")
    if report.domains:
        rows = []
        for item in report.domains:
            checks = item["checks"]
            key_text = "; ".join(
                f"{k.selector}: {k.algorithm} {k.key_bits or ''} bits, {k.state}, active since {_date(k.activated_at)}"
                for k in item["keys"]
            ) or "no key"
            rows.append([item["domain"].name, item["status"], _check_text(checks[RecordKind.SPF]),
                         _check_text(checks[RecordKind.DKIM]), key_text,
                         f"p={item['dmarc_policy']} ({_check_text(checks[RecordKind.DMARC])})",
                         f"{item['mta_sts']} ({_check_text(checks[RecordKind.MTA_STS])})", item["tls_policy"]])
        story.table(["Domain", "Status", "SPF", "DKIM record", "DKIM keys (rotation)", "DMARC", "MTA-STS", "TLS"],
                    rows, widths=[3, 2, 2, 2, 6, 3, 3, 2])  # fmt: skip
    else:
        story.para("No sending domains.", "small")

    story.h2("Volumes")
    story.table(["Messages", "Count"], [[key.replace("_", " "), value] for key, value in report.volumes.items()],
                widths=[3, 1])  # fmt: skip
    story.h2("Rates against the thresholds")
    story.table(["Rate", "Value", "Threshold", "Assessment"],
                [[name, _pct(value), _pct(limit) if limit else "—", assessment or "—"]
                 for name, value, limit, assessment in report.rates], widths=[5, 2, 2, 2], status_column=3)  # fmt: skip

    story.h2("Suppression activity")
    story.table(["Reason", "Added in the period"],
                [[reason, count] for reason, count in sorted(report.suppressions.items())] or [["—", 0]],
                widths=[3, 1])  # fmt: skip
    story.para(f"Suppression list size at the time of the report: {report.suppression_total}.", "small")

    story.h2("Data-subject requests handled")
    story.table(["Kind", "Status", "Requests"], [list(row) for row in report.data_requests] or [["—", "—", 0]],
                widths=[2, 2, 1])  # fmt: skip
    story.h2("Retention purges")
    story.table(["Kind", "Rows deleted"], [list(row) for row in report.purges] or [["—", 0]], widths=[3, 1])

    story.h2("Configuration changes (audit log)")
    story.table(["Object type", "Action", "Entries"], [list(row) for row in report.change_counts] or [["—", "—", 0]],
                widths=[3, 2, 1])  # fmt: skip
    changes = list(report.changes[:PDF_CHANGES_SHOWN])
    if changes:
        story.space(2)
        story.table(["Time (UTC)", "#", "Actor", "Action", "Object"],
                    [[e.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), e.seq, e.actor_name, e.action,
                      f"{e.object_type} {e.object_repr}"] for e in changes], widths=[2, 1, 3, 2, 5])  # fmt: skip
        total = report.changes.count()
        if total > len(changes):
            story.para(f"The first {len(changes)} of {total} changes are listed; the CSV report lists all.", "small")
    story.para(str(report.chain), colour=OK_COLOUR if report.chain.ok else BAD_COLOUR)
    return sign_pdf(story.render(), reason=f"DeliveryHub compliance report, job {job.uuid}")


def write_csv(report, target):
    """One row per fact: section, item, metric, value, threshold, assessment."""
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["section", "item", "metric", "value", "threshold", "assessment"])

        def row(*values):
            writer.writerow([csv_safe(v) for v in values])

        row("report", report.tenant.slug, "period_start", report.start.isoformat(), "", "")
        row("report", report.tenant.slug, "period_end", report.end.isoformat(), "", "")
        row("report", report.tenant.slug, "generated", report.generated.isoformat(), "", "")
        for item in report.domains:
            name = item["domain"].name
            row("domain", name, "status", item["status"], "", "")
            for kind, check in item["checks"].items():
                row("domain", name, f"{kind}_check", _check_text(check), "", "")
            row("domain", name, "dmarc_policy", item["dmarc_policy"], "", "")
            row("domain", name, "mta_sts_mode", item["mta_sts"], "", "")
            row("domain", name, "tls_policy", item["tls_policy"], "", "")
            for key in item["keys"]:
                row("dkim_key", f"{name}/{key.selector}", "algorithm", key.algorithm, "", "")
                row("dkim_key", f"{name}/{key.selector}", "key_bits", key.key_bits or "", "", "")
                row("dkim_key", f"{name}/{key.selector}", "state", key.state, "", "")
                row("dkim_key", f"{name}/{key.selector}", "activated_at", _date(key.activated_at), "", "")
        for key, value in report.volumes.items():
            row("volume", "messages", key, value, "", "")
        for name, value, limit, assessment in report.rates:
            row("rate", name, "rate", f"{value:.6f}", f"{limit:.6f}" if limit else "", assessment)
        for reason, count in sorted(report.suppressions.items()):
            row("suppressions", reason, "added", count, "", "")
        row("suppressions", "list", "size", report.suppression_total, "", "")
        for kind, status, count in report.data_requests:
            row("data_requests", kind, status, count, "", "")
        for kind, count in report.purges:
            row("retention", kind, "deleted", count, "", "")
        for object_type, action, count in report.change_counts:
            row("config_changes", object_type, action, count, "", "")
        for entry in report.changes.iterator(chunk_size=2000):
            row("audit_entry", entry.seq, entry.action, f"{entry.object_type} {entry.object_repr}".strip(),
                entry.time.astimezone(UTC).isoformat(), entry.actor_name)  # fmt: skip
        row("audit_chain", "head", "seq", report.head_seq, "", "")
        row("audit_chain", "head", "hash", report.head_hash, "", "")
        row("audit_chain", "verification", "result", str(report.chain), "", "ok" if report.chain.ok else "broken")


class ComplianceReportRunner(JobRunner):
    """Write a tenant's compliance report for a period; record its SHA-256 in the audit log."""

    name = "Compliance report"
    queue = QUEUE_LOW

    def run(self, job):
        fmt = job.params.get("format")
        if fmt not in ReportFormat.values or job.tenant is None:
            raise JobFailed("A report needs a tenant and a format (pdf or csv).")
        start = datetime.fromisoformat(job.params["start"])
        end = datetime.fromisoformat(job.params["end"])
        self.progress(job, 10, "Gathering the report.")
        report = collect(job.tenant, start, end)
        path = Path(settings.MEDIA_ROOT) / REPORT_DIR / f"{job.uuid}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.progress(job, 60, f"Writing the {fmt.upper()}.")
        if fmt == ReportFormat.PDF:
            path.write_bytes(render_pdf(report, job))
        else:
            write_csv(report, path)
        sha256 = file_sha256(path)
        job.result_file = f"{REPORT_DIR}/{path.name}"
        job.result = {"format": fmt, "sha256": sha256, "size": path.stat().st_size, "file": path.name,
                      "period_start": start.date().isoformat(), "period_end": end.date().isoformat()}  # fmt: skip
        job.save(update_fields=["result_file", "result"])
        audit.record(
            "report.compliance", tenant=job.tenant, object_type="deliveryhub.job", object_id=str(job.uuid),
            object_repr=job.name, postchange={"sha256": sha256, "format": fmt, "start": job.params["start"],
                                              "end": job.params["end"]},
            message=f"Compliance report ({fmt.upper()}) for {start.date()} – {end.date()}.",
        )  # fmt: skip
        self.progress(job, 100, f"Wrote the report, SHA-256 {sha256}.")


@transaction.atomic
def start_report(tenant, *, fmt, start, end, acting_user):
    """Enqueue a compliance report of `tenant` for the dates [start, end); PermissionDenied or ValidationError."""
    with audit.acting_as(acting_user):
        principal = Principal.of(acting_user)
        if not principal.allows(tenant.pk, Area.AUDIT, Action.EXPORT):
            raise PermissionDenied("Your role does not allow exporting reports.")
        if fmt not in ReportFormat.values:
            raise ValidationError({"format": "Choose pdf or csv."})
        begin, finish = period_bounds(start, end)
        return ComplianceReportRunner.enqueue(
            tenant=tenant, user=principal.user, api_key=principal.api_key,
            params={"format": fmt, "start": begin.isoformat(), "end": finish.isoformat(),
                    "requested_by": principal.name},
        )  # fmt: skip

