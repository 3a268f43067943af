"""UI pages of the reports app: the reports page (compliance reports), data-subject requests, retention and purges,
and the signature check.

Objects come through `restrict()` and the current tenant (another tenant's request is a 404); data-subject requests
and retention need Area.PRIVACY (owners, compliance staff), reports Area.AUDIT export. Writes go through
`reports.services` / `reports.compliance`.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from deliveryhub import signing
from deliveryhub.choices import Action, Area
from deliveryhub.models import Job
from deliveryhub.otp import otp_required_for_change
from deliveryhub.views import form_errors_to_messages, may, requires, tenant_required

from . import compliance, services
from .choices import DataRequestKind
from .constants import PURGE_RUNS_SHOWN
from .forms import ComplianceReportForm, DataRequestForm, RetentionForm, VerifyForm
from .models import DataRequest, PurgeRun, PurgeRunItem

DATA_REQUEST_PAGE_SIZE = 25
REPORTS_SHOWN = 10
STATUS_REFRESH_SECONDS = 2
MAX_VERIFY_BYTES = 200 * 1024 * 1024  # largest file the verify page reads


@login_required
@tenant_required
@require_GET
@requires(Area.AUDIT, Action.VIEW)
def index(request):
    """Reports: start a deliverability and compliance report; the latest reports; links to the privacy pages."""
    reports = Job.objects.restrict(request.principal, Action.VIEW).for_tenant(request.tenant).filter(
        runner=compliance.ComplianceReportRunner.dotted_path()
    )[:REPORTS_SHOWN]
    context = {
        "form": ComplianceReportForm(),
        "reports": reports,
        "may_export": may(request, Area.AUDIT, Action.EXPORT),
        "may_privacy": may(request, Area.PRIVACY, Action.VIEW),
        "open_requests": DataRequest.objects.restrict(request.principal).for_tenant(request.tenant).filter(
            status__in=("pending", "running")).count() if may(request, Area.PRIVACY, Action.VIEW) else 0,  # fmt: skip
    }
    return render(request, "reports/index.html", context)


@login_required
@tenant_required
@require_POST
@requires(Area.AUDIT, Action.EXPORT)
@otp_required_for_change
def compliance_report(request):
    form = ComplianceReportForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{field.replace('_', ' ')}: {error}")
        return redirect("reports")
    data = form.cleaned_data
    try:
        job = compliance.start_report(request.tenant, fmt=data["format"], start=data["period_start"],
                                      end=data["period_end"], acting_user=request.principal)  # fmt: skip
    except ValidationError as error:
        form_errors_to_messages(request, error)
        return redirect("reports")
    messages.success(request, "The report is being written: it appears here when ready.")
    return redirect("job-detail", uuid=job.uuid)


# ---------------------------------------------------------------------------------------------------------------------
# Data-subject requests
# ---------------------------------------------------------------------------------------------------------------------


@login_required
@tenant_required
@require_http_methods(["GET", "POST"])
@requires(Area.PRIVACY, Action.VIEW)
@otp_required_for_change
def data_request_list(request):
    """The tenant's data-subject requests, newest first, and the form that records a new one."""
    form = DataRequestForm(request.POST) if request.method == "POST" else DataRequestForm()
    if request.method == "POST":
        if not may(request, Area.PRIVACY, Action.ADD):
            raise PermissionDenied("Only owners and compliance staff handle data-subject requests.")
        if form.is_valid():
            data = form.cleaned_data
            try:
                created = services.create_data_request(request.tenant, kind=data["kind"], subjects=data["subjects"],
                                                       note=data["note"], acting_user=request.principal)  # fmt: skip
            except ValidationError as error:
                for text in error.messages:
                    form.add_error("subjects", text)
            else:
                messages.success(request, f"{created} recorded; it runs now.")
                return redirect("data-request-detail", uuid=created.uuid)
    requests = DataRequest.objects.restrict(request.principal).for_tenant(request.tenant)
    kind = request.GET.get("kind")
    if kind in DataRequestKind.values:
        requests = requests.filter(kind=kind)
    page = Paginator(requests, DATA_REQUEST_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "kind": kind, "may_add": may(request, Area.PRIVACY, Action.ADD)}
    return render(request, "reports/data_request_list.html", context, status=400 if form.errors else 200)


def _data_request(request, uuid):
    return get_object_or_404(DataRequest.objects.restrict(request.principal).for_tenant(request.tenant), uuid=uuid)


def _detail_context(request, data_request):
    sections = []
    for name, value in (data_request.result or {}).items():
        if isinstance(value, dict):  # erasure: counts per step
            sections.append((name, ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in value.items())))
        else:
            sections.append((name, value))
    return {"data_request": data_request, "sections": sections, "refresh_seconds": STATUS_REFRESH_SECONDS}


@login_required
@tenant_required
@require_GET
@requires(Area.PRIVACY, Action.VIEW)
def data_request_detail(request, uuid):
    data_request = _data_request(request, uuid)
    return render(request, "reports/data_request_detail.html", _detail_context(request, data_request))


@login_required
@tenant_required
@require_GET
@requires(Area.PRIVACY, Action.VIEW)
def data_request_status(request, uuid):
    """The status fragment the detail page polls (htmx) until the request has finished."""
    data_request = _data_request(request, uuid)
    return render(request, "reports/_data_request_status.html", _detail_context(request, data_request))


@login_required
@tenant_required
@require_GET
@requires(Area.PRIVACY, Action.EXPORT)
def data_request_download(request, uuid):
    data_request = _data_request(request, uuid)
    try:
        path = services.archive_for_download(data_request, acting_user=request.principal)
    except ValidationError as error:
        raise Http404(error.messages[0]) from None
    return FileResponse(path.open("rb"), as_attachment=True, filename=f"data-request-{data_request.uuid}.zip",
                        content_type="application/zip")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------------------------------


@login_required
@tenant_required
@require_GET
@requires(Area.PRIVACY, Action.VIEW)
def retention(request):
    """The periods in force for this tenant (own, platform default, built-in), recent purge runs and their counts."""
    items = PurgeRunItem.objects.restrict(request.principal).for_tenant(request.tenant).select_related("run")
    runs = {}
    for item in items.order_by("-run__started")[: PURGE_RUNS_SHOWN * 10]:
        runs.setdefault(item.run, []).append(item)
    own_runs = PurgeRun.objects.restrict(request.principal).filter(tenant=request.tenant)[:PURGE_RUNS_SHOWN]
    for run in own_runs:
        runs.setdefault(run, [])
    context = {
        "periods": services.periods(request.tenant),
        "platform_periods": services.periods(None) if request.principal.is_platform else None,
        "form": RetentionForm(),
        "platform_form": RetentionForm(platform=True) if request.principal.is_platform else None,
        "runs": sorted(runs.items(), key=lambda pair: pair[0].started, reverse=True)[:PURGE_RUNS_SHOWN],
        "may_change": may(request, Area.PRIVACY, Action.CHANGE),
    }
    return render(request, "reports/retention.html", context)


@login_required
@tenant_required
@require_POST
@requires(Area.PRIVACY, Action.CHANGE)
@otp_required_for_change
def retention_set(request):
    platform = request.POST.get("scope") == "platform"
    form = RetentionForm(request.POST, platform=platform)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{field}: {error}")
        return redirect("retention")
    try:
        services.set_retention(None if platform else request.tenant, form.cleaned_data["kind"],
                               form.cleaned_data["days"], acting_user=request.principal)  # fmt: skip
    except (ValidationError, PermissionDenied) as error:
        form_errors_to_messages(request, error)
    else:
        messages.success(request, "Retention period saved.")
    return redirect("retention")


@login_required
@tenant_required
@require_POST
@requires(Area.PRIVACY, Action.CHANGE)
@otp_required_for_change
def retention_purge(request):
    """Run the purge for this tenant now, or count what it would delete (dry run)."""
    dry_run = request.POST.get("dry_run") == "1"
    run = services.purge(dry_run=dry_run, tenant=request.tenant, acting_user=request.principal)
    verb = "would delete" if dry_run else "deleted"
    messages.success(request, f"{'Dry run' if dry_run else 'Purge'}: {verb} {run.total} row(s) or file(s).")
    return redirect("retention")


# ---------------------------------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def verify(request):
    """Check a signed PDF or archive against the platform's signing keys (any signed-in user may check a file)."""
    form = VerifyForm(request.POST, request.FILES) if request.method == "POST" else VerifyForm()
    result, status = None, 200
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > MAX_VERIFY_BYTES:
            form.add_error("file", f"Files up to {MAX_VERIFY_BYTES // (1024 * 1024)} MB can be checked here; use "
                                   "manage.py verify_signature for larger ones.")  # fmt: skip
            status = 413
        else:
            result = signing.verify_bytes(upload.read())
    elif form.errors:
        status = 400
    context = {"form": form, "result": result, "fingerprint": signing.active_key().fingerprint,
               "may_privacy": may(request, Area.PRIVACY, Action.VIEW)}  # fmt: skip
    return render(request, "reports/verify.html", context, status=status)


@login_required
@require_GET
def certificate(request):
    """The platform signing certificate (PEM): to verify files with other tools, e.g. Acrobat or pyHanko."""
    response = HttpResponse(signing.certificate_pem(), content_type="application/x-pem-file")
    response["Content-Disposition"] = 'attachment; filename="deliveryhub-signing-certificate.pem"'
    return response
