"""
Audit log exports for compliance staff: CSV (every matching entry) and PDF (a signed-off style report).

`start_audit_export()` checks the actor may export the tenant's audit log (Area.AUDIT, Action.EXPORT:
owners, admins, compliance), validates the filters and enqueues `AuditExportRunner` on the `low` queue.
The runner streams the filtered log by keyset on `seq`, EXPORT_ROWS_PER_CHUNK rows per query (never
the whole table in memory), writes MEDIA_ROOT/exports/<job uuid>.<csv|pdf>, and records the file's
SHA-256 both in `job.result` and in the audit log (`audit.export`), so a file handed to an auditor can
be matched to the entry that produced it.

PDF: drawn row by row as the chunks stream in (`deliveryhub.pdf.TableWriter`, about 3 s for 10,000 entries where
the earlier WeasyPrint layout took about 160 s), then signed with the platform key (PAdES, pyHanko) before its
SHA-256 is taken. A PDF holds at most EXPORT_PDF_MAX_ROWS entries (the cover says when it was truncated); CSV has
no cap.
"""

import csv
import json
import os
from datetime import UTC
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from . import audit
from .choices import Action, Area
from .constants import QUEUE_LOW
from .filtersets import AuditEntryFilterSet
from .jobs import JobFailed, JobRunner
from .models import AuditEntry
from .pdf import BAD_COLOUR, OK_COLOUR, TableWriter
from .permissions import Principal
from .signing import file_sha256, sign_pdf

EXPORT_DIR = "exports"  # under MEDIA_ROOT
FORMATS = {"csv": "text/csv", "pdf": "application/pdf"}
CSV_HEADER = [
    "time_utc", "seq", "actor_type", "actor_name", "request_id", "client_ip", "action",
    "object_type", "object_id", "object_repr", "prechange", "postchange", "message", "hash",
]  # fmt: skip
# Spreadsheets run cells starting with these as formulas: such cells get a leading apostrophe (OWASP advice).
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PDF_CHANGE_MAX_CHARS = 600  # a PDF cell shows at most this much of the pre/post-change JSON (CSV has all of it)


def filter_fields():
    return list(AuditEntryFilterSet.base_filters)


def clean_filters(data):
    """The AuditEntryFilterSet values present in `data` (a dict or QueryDict), validated; ValidationError if not."""
    filters = {}
    for name in filter_fields():
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            filters[name] = value.strip()
    filterset = AuditEntryFilterSet(data=filters, queryset=AuditEntry.objects.none())
    if not filterset.is_valid():
        raise ValidationError({field: [str(e) for e in errors] for field, errors in filterset.errors.items()})
    return filters


@transaction.atomic
def start_audit_export(*, actor, tenant, fmt, filters):
    """Enqueue an export of `tenant`'s audit log (every tenant's for a platform operator with no tenant).

    `actor` is a user, an API key or a Principal; raises PermissionDenied or ValidationError.
    """
    principal = Principal.of(actor)
    if fmt not in FORMATS:
        raise ValidationError({"format": f"Choose one of: {', '.join(FORMATS)}."})
    if tenant is None and not principal.is_platform:
        raise ValidationError({"tenant": "No current tenant: use a tenant API key or select a tenant."})
    if not principal.allows(getattr(tenant, "pk", None), Area.AUDIT, Action.EXPORT):
        raise PermissionDenied("Your role does not allow exporting the audit log.")
    filters = clean_filters(filters)
    return AuditExportRunner.enqueue(
        tenant=tenant,
        user=principal.user,
        api_key=principal.api_key,
        params={"format": fmt, "filters": filters, "requested_by": principal.name},
    )


def export_path(job, fmt):
    return Path(settings.MEDIA_ROOT) / EXPORT_DIR / f"{job.uuid}.{fmt}"


def iter_chunks(queryset, chunk_size, limit=None):
    """Yield lists of entries in `seq` order, `chunk_size` per query (keyset pagination), at most `limit` in all."""
    queryset = queryset.order_by("seq")
    last_seq, sent = 0, 0
    while limit is None or sent < limit:
        size = chunk_size if limit is None else min(chunk_size, limit - sent)
        chunk = list(queryset.filter(seq__gt=last_seq)[:size])
        if not chunk:
            return
        yield chunk
        sent += len(chunk)
        last_seq = chunk[-1].seq


def as_json(value):
    return "" if value is None else json.dumps(value, sort_keys=True, cls=DjangoJSONEncoder)


def utc_iso(value):
    return value.astimezone(UTC).isoformat()


def csv_safe(value):
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(CSV_FORMULA_PREFIXES) else value


def csv_row(entry):
    return [
        csv_safe(v)
        for v in (
            utc_iso(entry.time), entry.seq, entry.actor_type, entry.actor_name, entry.request_id, entry.client_ip,
            entry.action, entry.object_type, entry.object_id, entry.object_repr, as_json(entry.prechange),
            as_json(entry.postchange), entry.message, entry.hash,
        )
    ]  # fmt: skip


def _clip(text):
    return text if len(text) <= PDF_CHANGE_MAX_CHARS else text[:PDF_CHANGE_MAX_CHARS] + " …(truncated)"


# (title, relative width, monospaced) of the PDF's columns
PDF_COLUMNS = [
    ("Time (UTC)", 9, False), ("#", 4, False), ("Actor", 11, False), ("Action", 9, False), ("Object", 14, False),
    ("Before", 17, True), ("After", 17, True), ("Message", 12, False), ("Request / IP", 7, True),
]  # fmt: skip


def pdf_row(entry):
    """The cells of one entry in the PDF table."""
    obj = entry.object_type + (f" #{entry.object_id}" if entry.object_id else "")
    return [
        entry.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        entry.seq,
        f"{entry.actor_name} ({entry.actor_type})",
        entry.action,
        f"{obj}\n{entry.object_repr}" if entry.object_repr else obj,
        _clip(as_json(entry.prechange)),
        _clip(as_json(entry.postchange)),
        entry.message,
        f"{entry.request_id[:12]}{'…' if len(entry.request_id) > 12 else ''}\n{entry.client_ip or ''}",
    ]


class AuditExportRunner(JobRunner):
    """Export a tenant's audit log, filtered, to CSV or PDF; record the file's SHA-256 in the audit log."""

    name = "Audit log export"
    queue = QUEUE_LOW

    def run(self, job):
        fmt = job.params.get("format")
        if fmt not in FORMATS:
            raise JobFailed(f"Unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}.")
        queryset = self.queryset(job)
        total = queryset.count()
        path = export_path(job, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        self.progress(job, 0, f"Exporting {total} audit entries as {fmt.upper()}.")
        try:
            if fmt == "csv":
                rows, truncated = self.write_csv(job, queryset, total, partial), False
            else:
                rows, truncated = self.write_pdf(job, queryset, total, partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

        sha256 = file_sha256(path)
        job.result_file = f"{EXPORT_DIR}/{path.name}"
        job.result = {
            "format": fmt, "rows": rows, "total": total, "truncated": truncated, "sha256": sha256,
            "size": path.stat().st_size, "file": path.name,
        }  # fmt: skip
        job.save(update_fields=["result_file", "result"])
        audit.record(
            "audit.export",
            tenant=job.tenant,
            object_type="deliveryhub.job",
            object_id=str(job.uuid),
            object_repr=job.name,
            message=f"Audit log exported as {fmt.upper()} ({rows} entries) for {job.params.get('requested_by', '?')}.",
            postchange={"sha256": sha256, "rows": rows, "format": fmt, "filters": job.params.get("filters", {})},
        )
        self.progress(job, 100, f"Wrote {rows} entries, SHA-256 {sha256}.")

    # -- what is exported -----------------------------------------------------------------------------------------
    def queryset(self, job):
        """The job tenant's entries the requester may still export, narrowed by the saved filters."""
        queryset = AuditEntry.objects.all()
        if job.tenant_id is not None:
            queryset = queryset.filter(tenant_id=job.tenant_id)
        if job.api_key_id is not None or job.user_id is not None:
            # a role lost since the request exports nothing
            queryset = queryset.restrict(job.api_key or job.user, Action.EXPORT)
        filterset = AuditEntryFilterSet(data=job.params.get("filters") or {}, queryset=queryset)
        if not filterset.is_valid():
            raise JobFailed(f"Invalid filters: {dict(filterset.errors)}")
        return filterset.qs

    def _chunk_progress(self, job, done, total, limit=None):
        wanted = min(total, limit) if limit is not None else total
        self.progress(job, 95 * done // wanted if wanted else 95)

    # -- CSV ------------------------------------------------------------------------------------------------------
    def write_csv(self, job, queryset, total, target):
        rows = 0
        with open(target, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_HEADER)
            for chunk in iter_chunks(queryset, settings.EXPORT_ROWS_PER_CHUNK):
                writer.writerows(csv_row(entry) for entry in chunk)
                rows += len(chunk)
                self._chunk_progress(job, rows, total)
        return rows

    # -- PDF ------------------------------------------------------------------------------------------------------
    def write_pdf(self, job, queryset, total, target):
        limit = settings.EXPORT_PDF_MAX_ROWS
        filters = job.params.get("filters") or {}
        chain = audit.verify_chain()
        tenant = job.tenant
        writer = TableWriter(
            PDF_COLUMNS,
            title=f"Audit log{f' — {tenant.name}' if tenant else ''}",
            footer=f"DeliveryHub audit log{f' — {tenant.slug}' if tenant else ''} — job {job.uuid}",
        )
        shown = min(total, limit)
        cover = [
            ("Tenant", f"{tenant.name} ({tenant.slug})" if tenant else "All tenants (platform)", None),
            ("Period (UTC)", f"{filters.get('after') or 'start of the log'} — "
                             f"{filters.get('before') or 'time of export'}", None),
            ("Filters", "; ".join(f"{k} = {v}" for k, v in filters.items() if k not in ("after", "before")) or "none",
             None),
            ("Generated by", job.params.get("requested_by") or "system", None),
            ("Generated at", timezone.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), None),
            ("Entries", f"{total} matching" + (f", the first {shown} shown" if total > limit else ""), None),
            ("Chain verification", str(chain), OK_COLOUR if chain.ok else BAD_COLOUR),
            ("Job", str(job.uuid), None),
        ]  # fmt: skip
        if total > limit:
            cover.append((
                "TRUNCATED",
                f"this PDF holds the first {shown} of {total} matching entries (the PDF limit is {limit} entries). "
                "Export as CSV for every entry, or narrow the period.",
                BAD_COLOUR,
            ))  # fmt: skip
        cover.append(("Integrity", "Signed by the platform key (PAdES); its SHA-256 is recorded in the audit log as "
                      f"an audit.export entry for job {job.uuid}.", None))  # fmt: skip
        writer.cover(cover, heading="Audit log report")
        rows = 0
        for chunk in iter_chunks(queryset, settings.EXPORT_ROWS_PER_CHUNK, limit=limit):
            for entry in chunk:
                writer.add_row(pdf_row(entry))
            rows += len(chunk)
            self._chunk_progress(job, rows, total, limit)
        if not total:
            writer.note("No audit entries match these filters.")
        self.progress(job, 96, f"Signing the PDF ({rows} entries).")
        target.write_bytes(sign_pdf(writer.close(), reason=f"DeliveryHub audit log export, job {job.uuid}"))
        return rows, total > limit
