"""
Personal data held by the reports app and the core's jobs, for data-subject requests and retention
(registered with deliveryhub.privacy).

- Earlier data-subject requests name the subject: an access archive lists them, an erasure turns their addresses
  into pseudonyms and deletes their archives.
- Export files (audit exports, compliance reports, access archives) are kept EXPORT_FILES days (default 7).
"""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from deliveryhub import privacy
from deliveryhub.choices import JobStatus
from deliveryhub.models import Job

from .models import DataRequest
from .services import erase_request_traces


@privacy.subject_data("data_requests", title="Data-subject requests about these addresses", order=90,
                      columns=("created", "kind", "status"))  # fmt: skip
def requests_of(subject):
    for request in DataRequest.objects.filter(tenant_id=subject.tenant_id).order_by("created"):
        if any(privacy.normalise_address(address) in subject.addresses for address in request.subjects):
            yield {"id": str(request.uuid), "created": request.created.isoformat(), "kind": request.kind,
                   "status": request.status, "completed": request.completed.isoformat() if request.completed else None}


@privacy.subject_erasure("data_requests", order=90)
def erase_requests(subject):
    return erase_request_traces(subject)


def _delete_files(paths):
    root = Path(settings.MEDIA_ROOT).resolve()
    for relative in paths:
        path = (root / relative).resolve()
        if path.is_relative_to(root):
            path.unlink(missing_ok=True)


@privacy.retention("export_files", title="Export files and archives", default_days=7, order=80,
                   help_text="days after an export, report or access archive was made")  # fmt: skip
def purge_export_files(scope):
    """Delete the files of finished jobs and access archives older than the cutoff (the rows stay, without file)."""
    jobs = Job.objects.filter(completed__lt=scope.cutoff, status=JobStatus.COMPLETED).exclude(result_file="")
    requests = DataRequest.objects.filter(completed__lt=scope.cutoff).exclude(archive_file="")
    if scope.tenant_id is None:
        jobs, requests = jobs.filter(tenant__isnull=True), requests.none()
    else:
        jobs, requests = jobs.filter(tenant_id=scope.tenant_id), requests.filter(tenant_id=scope.tenant_id)
    count = 0
    for queryset, column in ((jobs, "result_file"), (requests, "archive_file")):
        while True:
            rows = list(queryset.order_by("pk").values_list("pk", column)[: scope.chunk_size])
            if scope.dry_run:
                count += queryset.count()
                break
            if not rows:
                break
            with transaction.atomic():
                queryset.model.objects.filter(pk__in=[pk for pk, _ in rows]).update(**{column: ""})
                paths = [path for _, path in rows]
                transaction.on_commit(lambda paths=paths: _delete_files(paths))
            count += len(rows)
    return count
