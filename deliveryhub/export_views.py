"""UI for audit exports: start a CSV or PDF export of the audit page's current filters, then watch the job."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from .choices import Action, Area
from .exports import start_audit_export
from .otp import otp_required_for_change
from .views import requires, tenant_required


@login_required
@tenant_required
@require_POST
@requires(Area.AUDIT, Action.EXPORT)
@otp_required_for_change
def audit_export(request):
    """POST format=csv|pdf plus the audit filters: enqueue the export and show its job page."""
    try:
        job = start_audit_export(
            actor=request.principal, tenant=request.tenant, fmt=request.POST.get("format", ""), filters=request.POST
        )
    except ValidationError as exc:
        for text in exc.messages:
            messages.error(request, text)
        query = request.POST.copy()
        for name in ("csrfmiddlewaretoken", "format"):
            query.pop(name, None)
        return redirect(f"{reverse('audit-log')}?{query.urlencode()}" if query else reverse("audit-log"))
    messages.success(request, f"{job.params['format'].upper()} export started: the file appears here when ready.")
    return redirect("job-detail", uuid=job.uuid)
