"""
Verbs of the reports app: data-subject requests (access, erasure), retention policies and the purge.

Data-subject requests belong to owners and compliance staff (Area.PRIVACY). `create_data_request` records the
request and enqueues its job; the job (`reports.jobs.DataRequestRunner`) calls `run_data_request`, which walks
the registry of `deliveryhub.privacy`: every app's access sections for an access archive, every app's erasure steps
(in one transaction) for an erasure. Each step is audited; the audit log names subjects by pseudonym only.

The purge (`purge()`) asks every registered retention kind to delete what is older than the tenant's period (or
the platform default) in chunks, and records counts per kind and tenant in a `PurgeRun`; `dry_run` counts only.
"""

import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from deliveryhub import audit, privacy
from deliveryhub.choices import Action, Area
from deliveryhub.constants import QUEUE_LOW
from deliveryhub.crypto import is_pseudonym_address, personal_marker, pseudonym_address
from deliveryhub.jobs import JobFailed, JobRunner
from deliveryhub.models import Tenant
from deliveryhub.pdf import Story
from deliveryhub.permissions import Principal
from deliveryhub.privacy import Subject, normalise_address
from deliveryhub.signing import file_sha256, sign_pdf, write_signed_zip
from queues.mime import normalize_address

from .choices import DataRequestKind, DataRequestStatus, PurgeRunStatus
from .constants import ARCHIVE_DIR, MAX_SUBJECTS, PDF_SUMMARY_ROWS
from .models import DataRequest, PurgeRun, PurgeRunItem, RetentionPolicy

logger = logging.getLogger(__name__)

ARCHIVE_JSON = "subject-data.json"
ARCHIVE_PDF = "summary.pdf"


# ---------------------------------------------------------------------------------------------------------------------
# Data-subject requests
# ---------------------------------------------------------------------------------------------------------------------


def require_privacy(principal, tenant, action):
    """PermissionDenied unless `principal` may act on data-subject requests and retention in `tenant`."""
    if not principal.allows(tenant.pk, Area.PRIVACY, action):
        raise PermissionDenied("Only owners and compliance staff handle data-subject requests.")


def clean_subjects(subjects):
    """The subjects as normalised, distinct addresses; ValidationError naming the first bad one."""
    if isinstance(subjects, str):
        subjects = [part for part in subjects.replace(",", "\n").split("\n")]
    if not isinstance(subjects, list | tuple):
        raise ValidationError({"subjects": "Give a list of email addresses."})
    cleaned = []
    for index, value in enumerate(subjects):
        if not isinstance(value, str):
            raise ValidationError({"subjects": f"Item {index} is not a string."})
        if not value.strip():
            continue
        try:
            address = normalise_address(normalize_address(value, "subjects"))
        except ValidationError as exc:
            raise ValidationError({"subjects": exc.messages}) from None
        if is_pseudonym_address(address):
            raise ValidationError({"subjects": f"{value!r} is already a pseudonym."})
        if address not in cleaned:
            cleaned.append(address)
    if not cleaned:
        raise ValidationError({"subjects": "Give at least one email address."})
    if len(cleaned) > MAX_SUBJECTS:
        raise ValidationError({"subjects": f"At most {MAX_SUBJECTS} addresses per request."})
    return cleaned


@transaction.atomic
def create_data_request(tenant, *, kind, subjects, note="", acting_user):
    """Record an access or erasure request for `subjects` (addresses) in `tenant` and enqueue its job."""
    principal = Principal.of(acting_user)
    require_privacy(principal, tenant, Action.ADD)
    if kind not in DataRequestKind.values:
        raise ValidationError({"kind": f"Choose one of: {', '.join(DataRequestKind.values)}."})
    if not isinstance(note, str) or len(note) > 2000:
        raise ValidationError({"note": "A note is text of at most 2000 characters."})
    addresses = clean_subjects(subjects)
    with audit.acting_as(acting_user):
        request = DataRequest.objects.create(
            tenant=tenant, kind=kind, subjects=addresses, note=note.strip(), requested_by=principal.user,
            requested_by_name=principal.name[:200],
        )  # fmt: skip
        request.job = DataRequestRunner.enqueue(
            tenant=tenant, user=principal.user, api_key=principal.api_key, params={"data_request": request.pk},
            object=request,
        )  # fmt: skip
        request.save(update_fields=["job"])
        audit.record(
            f"datarequest.{kind}.create",
            obj=request,
            postchange={"kind": kind, "subjects": personal_marker(addresses), "note": request.note},
            message=f"{request} recorded for {len(addresses)} address(es).",
        )
    return request


class DataRequestRunner(JobRunner):
    """The job of a data-subject request: builds the access archive or runs the erasure."""

    name = "Data-subject request"
    queue = QUEUE_LOW

    def run(self, job):
        request = DataRequest.objects.filter(pk=job.params.get("data_request"), tenant_id=job.tenant_id).first()
        if request is None:
            raise JobFailed("The data-subject request no longer exists.")
        self.progress(job, 5, f"Running {request}.")
        try:
            request = run_data_request(request.pk)
        except privacy.ErasureBlocked as exc:
            raise JobFailed(str(exc)) from None
        job.result = {"data_request": str(request.uuid), "status": request.status, "result": request.result}
        job.save(update_fields=["result"])
        self.progress(job, 100, f"{request} {request.status} in {request.duration or 0:.1f} s.")


def run_data_request(request_pk):
    """Run a pending request (the job's body): build the archive or erase; record the outcome and audit it."""
    request = DataRequest.objects.select_related("tenant").get(pk=request_pk)
    if request.status != DataRequestStatus.PENDING:
        return request
    started = time.monotonic()
    DataRequest.objects.filter(pk=request.pk).update(status=DataRequestStatus.RUNNING, started=timezone.now())
    subject = Subject.of(request.tenant_id, request.subjects)
    try:
        if request.kind == DataRequestKind.ACCESS:
            result = _run_access(request, subject)
        else:
            result = _run_erasure(request, subject)
    except privacy.ErasureBlocked as exc:
        _fail(request, str(exc))
        raise
    except Exception as exc:
        _fail(request, f"{type(exc).__name__}: {exc}")
        raise
    request.refresh_from_db()
    request.status, request.completed = DataRequestStatus.COMPLETED, timezone.now()
    request.result, request.duration = result, round(time.monotonic() - started, 3)
    request.save(update_fields=["status", "completed", "result", "duration"])
    audit.record(
        f"datarequest.{request.kind}.complete",
        obj=request,
        postchange={"result": result, "sha256": request.archive_sha256 or None, "seconds": request.duration},
        message=f"{request} completed in {request.duration:.1f} s.",
    )
    return request


def _fail(request, error):
    DataRequest.objects.filter(pk=request.pk).update(
        status=DataRequestStatus.FAILED, error=error[:5000], completed=timezone.now()
    )
    audit.record(f"datarequest.{request.kind}.fail", obj=request, message=error[:1000])


def archive_root():
    return Path(settings.MEDIA_ROOT) / ARCHIVE_DIR


def _run_access(request, subject):
    """Write the access archive: the JSON of every section plus a signed PDF summary, in a signed ZIP."""
    root = archive_root()
    workdir = root / f"{request.uuid}.tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        json_path, summary = workdir / ARCHIVE_JSON, {}
        with open(json_path, "w", encoding="utf-8") as out:
            header = {
                "format": "deliveryhub-subject-access", "version": 1, "request": str(request.uuid),
                "tenant": request.tenant.slug, "subjects": list(subject.addresses),
                "generated": timezone.now().astimezone(UTC).isoformat(),
            }  # fmt: skip
            # Written as it streams: {"format": …, …, "sections": {"<name>": {"title": …, "records": […], "count": n}}}
            out.write("{\n")
            for key, value in header.items():
                out.write(f" {json.dumps(key)}: {json.dumps(value)},\n")
            out.write(' "sections": {')
            for index, section in enumerate(privacy.access_sections()):
                out.write(("," if index else "") + f"\n  {json.dumps(section.name)}: {{\"title\": "
                          f"{json.dumps(section.title)}, \"records\": [")  # fmt: skip
                count, rows = 0, []
                for record in section.func(subject):
                    out.write(("," if count else "") + "\n   " + json.dumps(record, cls=DjangoJSONEncoder,
                                                                          sort_keys=True))  # fmt: skip
                    if count < PDF_SUMMARY_ROWS:
                        rows.append([_cell(record.get(column)) for column in section.columns])
                    count += 1
                out.write(f"], \"count\": {count}}}")
                summary[section.name] = {"title": section.title, "columns": section.columns, "rows": rows,
                                         "count": count}  # fmt: skip
            out.write("\n }\n}\n")
        pdf_path = workdir / ARCHIVE_PDF
        pdf_path.write_bytes(sign_pdf(_access_summary_pdf(request, subject, summary),
                                      reason=f"DeliveryHub data-subject access report {request.uuid}"))  # fmt: skip
        target = root / f"{request.uuid}.zip"
        write_signed_zip(target, [(ARCHIVE_JSON, json_path), (ARCHIVE_PDF, pdf_path)], kind="subject-access",
                         info={"request": str(request.uuid), "tenant": request.tenant.slug})  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    request.archive_file = f"{ARCHIVE_DIR}/{target.name}"
    request.archive_sha256 = file_sha256(target)
    request.archive_size = target.stat().st_size
    request.save(update_fields=["archive_file", "archive_sha256", "archive_size"])
    return {name: part["count"] for name, part in summary.items()}


def _cell(value):
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, str) and len(value) > 19 and value[10:11] == "T":
        return value[:19].replace("T", " ")  # an ISO timestamp, to the second
    return "" if value is None else str(value)


def _access_summary_pdf(request, subject, summary):
    story = Story(title=f"Data-subject access report {request.uuid}",
                  footer=f"DeliveryHub data-subject access report — {request.tenant.slug} — {request.uuid}")
    story.h1("Data-subject access report")
    story.table(["", ""], [
        ["Tenant", f"{request.tenant.name} ({request.tenant.slug})"],
        ["Addresses", ", ".join(subject.addresses)],
        ["Request", str(request.uuid)],
        ["Requested by", request.requested_by_name or "—"],
        ["Requested at", request.created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")],
        ["Generated at", timezone.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")],
        ["Note", request.note or "—"],
    ], widths=[1, 4])  # fmt: skip
    story.space()
    story.para("This summary lists what DeliveryHub holds about these addresses for this tenant. The complete "
               f"records are in {ARCHIVE_JSON} beside this file; the archive's manifest is signed by the platform key "
               "(check it with `manage.py verify_signature` or on the verify page).", "small")  # fmt: skip
    story.h2("Overview")
    story.table(["What", "Records"], [[part["title"], part["count"]] for part in summary.values()], widths=[4, 1])
    for part in summary.values():
        story.h2(f"{part['title']} ({part['count']})")
        if not part["count"]:
            story.para("Nothing held.", "small")
            continue
        if part["columns"]:
            story.table([column.replace("_", " ").capitalize() for column in part["columns"]], part["rows"])
        if part["count"] > len(part["rows"]):
            story.para(f"The first {len(part['rows'])} of {part['count']} are listed; {ARCHIVE_JSON} has all.",
                       "small")  # fmt: skip
    return story.render()


def _run_erasure(request, subject):
    """Every app's erasure step in one transaction; the subjects become pseudonyms here and in earlier requests."""
    with transaction.atomic():
        counts = {}
        for step in privacy.erasure_steps():
            counts[step.name] = step.func(subject)
        audit.record(
            "datarequest.erasure.erase",
            obj=request,
            postchange={"subjects": personal_marker(list(subject.addresses)), "counts": counts},
            message=f"Personal data of {len(subject.addresses)} address(es) erased; kept as pseudonyms only.",
        )
    return counts


def archive_for_download(request, *, acting_user):
    """The path of a completed access request's archive (audited as a download); ValidationError if none."""
    principal = Principal.of(acting_user)
    require_privacy(principal, request.tenant, Action.EXPORT)
    if not request.has_archive:
        raise ValidationError("This request has no archive to download.")
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / request.archive_file).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ValidationError("The archive is no longer available (export files are kept for a limited time).")
    with audit.acting_as(acting_user):
        audit.record("datarequest.access.download", obj=request, postchange={"sha256": request.archive_sha256})
    return path


def erase_request_traces(subject):
    """Every request of the tenant naming the subject: its addresses become pseudonyms, its archive is deleted."""
    changed, files = 0, []
    for request in DataRequest.objects.filter(tenant_id=subject.tenant_id):
        if not any(normalise_address(address) in subject.addresses for address in request.subjects):
            continue
        request.subjects = [
            pseudonym_address(a) if normalise_address(a) in subject.addresses else a for a in request.subjects
        ]
        request.note = subject.scrub(request.note)
        if request.archive_file:
            files.append(Path(settings.MEDIA_ROOT) / request.archive_file)
            request.archive_file = ""
        request.save(update_fields=["subjects", "note", "archive_file"])
        changed += 1
    transaction.on_commit(lambda: [path.unlink(missing_ok=True) for path in files])
    return {"data_requests": changed, "archives_deleted": len(files)}


# ---------------------------------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The retention period in force for one kind: its days and where they come from."""

    kind: privacy.RetentionKind
    days: int
    source: str  # "tenant", "platform" or "default"


def periods(tenant=None):
    """The period of every kind for `tenant` (its own, else the platform's, else the built-in default)."""
    platform = dict(RetentionPolicy.objects.filter(tenant__isnull=True).values_list("kind", "days"))
    own = dict(RetentionPolicy.objects.filter(tenant=tenant).values_list("kind", "days")) if tenant else {}
    result = []
    for kind in privacy.retention_kinds():
        if tenant is not None and kind.per_tenant and kind.name in own:
            result.append(Period(kind, own[kind.name], "tenant"))
        elif kind.name in platform:
            result.append(Period(kind, platform[kind.name], "platform"))
        else:
            result.append(Period(kind, kind.default_days, "default"))
    return result


@transaction.atomic
def set_retention(tenant, kind, days, *, acting_user):
    """Set a tenant's period for `kind` (tenant None: the platform default). `days=None` removes it."""
    principal = Principal.of(acting_user)
    if tenant is None:
        if not principal.is_platform:
            raise PermissionDenied("Only platform operators set the platform defaults.")
    else:
        require_privacy(principal, tenant, Action.CHANGE)
    with audit.acting_as(acting_user):
        existing = RetentionPolicy.objects.filter(tenant=tenant, kind=kind).first()
        if days in (None, ""):
            if existing is not None:
                existing.delete()
            return None
        try:
            days = int(days)
        except (TypeError, ValueError):
            raise ValidationError({"days": "A whole number of days."}) from None
        policy = existing or RetentionPolicy(tenant=tenant, kind=kind)
        policy.days = days
        policy.full_clean(validate_unique=False)
        policy.save()
        return policy


def purge(*, now=None, dry_run=False, tenant=None, acting_user=None, triggered_by=""):
    """Delete (or with `dry_run` count) everything past its retention period; returns the recorded `PurgeRun`.

    Runs kind by kind and tenant by tenant; each purger works in chunks of RETENTION_PURGE_CHUNK rows with a short
    transaction per chunk, so delivery goes on. `tenant` limits the run to one tenant (its platform rows aside).
    """
    now = now or timezone.now()
    principal = Principal.of(acting_user) if acting_user is not None else None
    if principal is not None:
        if tenant is None and not principal.is_platform:
            raise PermissionDenied("Only platform operators purge every tenant at once.")
        if tenant is not None:
            require_privacy(principal, tenant, Action.CHANGE)
    with audit.acting_as(acting_user):
        run = PurgeRun.objects.create(
            started=timezone.now(), dry_run=dry_run, tenant=tenant,
            triggered_by=triggered_by or (principal.name if principal else "system"),
        )  # fmt: skip
        tenants = [tenant] if tenant is not None else list(Tenant.objects.order_by("pk"))
        total = 0
        try:
            # (tenant, period) pairs: each tenant's per-tenant kinds; on a full run also the platform's rows
            # (per-tenant kinds: rows of no tenant; platform-wide kinds: every row) at the platform periods.
            work = [(t, p) for t in tenants for p in periods(t) if p.kind.per_tenant]
            if tenant is None:
                work += [(None, p) for p in periods(None)]
            for scope_tenant, period in work:
                cutoff = now - timedelta(days=period.days)
                scope = privacy.PurgeScope(
                    tenant_id=scope_tenant.pk if scope_tenant else None, cutoff=cutoff, now=now, dry_run=dry_run,
                    chunk_size=settings.RETENTION_PURGE_CHUNK,
                )  # fmt: skip
                count = period.kind.func(scope)
                if count:
                    PurgeRunItem.objects.create(run=run, tenant=scope_tenant, kind=period.kind.name,
                                                days=period.days, cutoff=cutoff, count=count)  # fmt: skip
                    total += count
        except Exception as exc:
            run.status, run.error = PurgeRunStatus.FAILED, f"{type(exc).__name__}: {exc}"
            run.finished, run.total = timezone.now(), total
            run.save(update_fields=["status", "error", "finished", "total"])
            audit.record("retention.purge_failed", obj=run, message=run.error[:1000])
            raise
        run.status, run.finished, run.total = PurgeRunStatus.COMPLETED, timezone.now(), total
        run.save(update_fields=["status", "finished", "total"])
        counts = {}
        for item in run.items.select_related("tenant"):
            counts.setdefault(item.tenant.slug if item.tenant else "(platform)", {})[item.kind] = item.count
        audit.record(
            "retention.dry_run" if dry_run else "retention.purge",
            obj=run,
            tenant=tenant,
            postchange={"counts": counts, "total": total, "now": now.isoformat()},
            message=f"{'Would delete' if dry_run else 'Deleted'} {total} row(s) past their retention period.",
        )
    return run
