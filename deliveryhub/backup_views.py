"""The operator page for configuration backups: write an archive, upload one, see what it would change, restore it.
Platform operators (superusers) only, with a verified second factor; a restore needs a fresh code (sudo)."""

import uuid
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import backup, leader
from .crypto import configured_keys, key_id
from .models import Job
from .otp import otp_required, sudo_required

BACKUP_JOBS_SHOWN = 10
MAX_UPLOAD_BYTES = 500 * 1024 * 1024


def _operator(request):
    if not request.principal.is_platform or request.principal.user is None:
        raise PermissionDenied("Only platform operators back up and restore the configuration.")


@login_required
@require_GET
@otp_required
def backup_page(request):
    _operator(request)
    runners = [backup.ConfigExportRunner.dotted_path(), backup.ConfigImportRunner.dotted_path()]
    context = {
        "jobs": Job.objects.filter(runner__in=runners, tenant__isnull=True)[:BACKUP_JOBS_SHOWN],
        "lease": leader.current(leader.SCHEDULER_LEASE),
        "key_ids": [key_id(raw) for raw in configured_keys()],
        "sections": backup.sections(),
    }
    return render(request, "deliveryhub/backup.html", context)


@login_required
@require_POST
@otp_required
def backup_export(request):
    _operator(request)
    job = backup.ConfigExportRunner.enqueue(user=request.user, params={"requested_by": request.principal.name})
    messages.success(request, "The configuration archive is being written: download it here when ready.")
    return redirect("job-detail", uuid=job.uuid)


@login_required
@require_POST
@otp_required
def backup_upload(request):
    """Check an uploaded archive's signature and show what restoring it would change (nothing is changed yet)."""
    _operator(request)
    upload = request.FILES.get("archive")
    if upload is None:
        messages.error(request, "Choose an archive written by export_config or this page.")
        return redirect("backup")
    if upload.size > MAX_UPLOAD_BYTES:
        messages.error(request, f"Archives up to {MAX_UPLOAD_BYTES // (1024 * 1024)} MB can be restored here; use "
                                "manage.py import_config for larger ones.")  # fmt: skip
        return redirect("backup")
    name = f"{uuid.uuid4()}.zip"
    path = Path(settings.MEDIA_ROOT) / backup.UPLOAD_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    trust = request.POST.get("trust_signer", "").strip()
    try:
        document, verification = backup.read_archive(path, trust_signer=trust)
    except backup.RestoreError as exc:
        path.unlink(missing_ok=True)
        for text in exc.messages:
            messages.error(request, text)
        return redirect("backup")
    context = {
        "upload": name, "document": document, "verification": verification, "trust_signer": trust,
        "differences": backup.diff(document), "scheduled_choices": backup.SCHEDULED_CHOICES,
        "rows": sum(len(rows) for rows in document["sections"].values()),
    }  # fmt: skip
    return render(request, "deliveryhub/backup_preview.html", context)


@login_required
@require_POST
@sudo_required
def backup_restore(request):
    _operator(request)
    upload = Path(request.POST.get("upload", "")).name
    scheduled = request.POST.get("scheduled", "paused")
    if not upload or scheduled not in backup.SCHEDULED_CHOICES:
        messages.error(request, "Upload the archive again.")
        return redirect("backup")
    job = backup.ConfigImportRunner.enqueue(user=request.user, params={
        "upload": upload, "scheduled": scheduled, "trust_signer": request.POST.get("trust_signer", ""),
        "requested_by": request.principal.name,
    })  # fmt: skip
    messages.success(request, "Restoring the configuration: this page shows how it went.")
    return redirect("job-detail", uuid=job.uuid)
