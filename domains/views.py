"""UI of the domains app: the domain list with health badges, the domain page (record plan, live status,
key timeline, check now), adding, changing and deleting domains, DKIM rotation and private-key export.

Objects come through `SendingDomain.objects.for_request(request)` (another tenant's domain is a 404); the role check
comes next (a 403); changes are POST-only (the verbs are `deliveryhub.generic_views.ObjectVerbView`s) and need an
OTP-verified session; exporting a private key needs a fresh code (`sudo_required`) and is audited.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from deliveryhub.choices import Action, Area
from deliveryhub.generic_views import ObjectVerbView, csv_download
from deliveryhub.otp import otp_required_for_change, sudo_required
from deliveryhub.views import form_errors_to_messages, may, requires, tenant_required

from . import services
from .api.serializers import dns_records
from .choices import DNS_CHECK_BADGES, HEALTH_KINDS, WARNING_BADGE, DkimKeyState, DNSCheckStatus
from .filtersets import SendingDomainFilterSet
from .forms import DkimRotateForm, DomainAddForm, DomainSettingsForm, key_choice_to_args
from .models import DkimKey, SendingDomain
from .plan import record_plan, zone_snippet

BADGE_ORDER = ["danger", "warning", "secondary", "success"]  # worst first: a kind's badge is its worst record's


def _domains(request):
    return SendingDomain.objects.for_request(request)


def _domain(request, pk):
    return get_object_or_404(_domains(request), pk=pk)


def health(domain):
    """[(label, badge, title)] per record kind for the list page, from the stored checks."""
    checks = list(domain.dns_checks.all())
    out = []
    for label, kinds in HEALTH_KINDS:
        rows = [c for c in checks if c.kind in kinds]
        if not rows:
            out.append((label, "secondary", "nothing to check" if domain.last_checked else "not checked"))
            continue
        badge = min((c.badge for c in rows), key=BADGE_ORDER.index)
        statuses = sorted({c.status for c in rows})
        warned = any(c.warnings for c in rows)
        out.append((label, badge, ", ".join(statuses) + (" (with warnings)" if warned else "")))
    return out


@login_required
@tenant_required
@require_GET
@requires(Area.INFRASTRUCTURE, Action.VIEW)
def domain_list(request):
    filterset = SendingDomainFilterSet(request.GET, queryset=_domains(request).prefetch_related("dns_checks"))
    rows = [(domain, health(domain)) for domain in filterset.qs]
    if request.GET.get("export") == "csv":
        kinds = [label.upper() for label, _ in HEALTH_KINDS]
        header = ["Domain", "ASCII name", "Status", "May send", *kinds, "Last checked"]
        lines = [
            [domain.unicode_name, domain.name, domain.get_status_display(), "yes" if domain.can_send()[0] else "no",
             *(title for _, _, title in checks), domain.last_checked.isoformat() if domain.last_checked else ""]
            for domain, checks in rows
        ]  # fmt: skip
        return csv_download([header, *lines], "sending domains")
    context = {"rows": rows, "filter": filterset, "may_add": may(request, Area.INFRASTRUCTURE, Action.ADD)}
    return render(request, "domains/domain_list.html", context)


@login_required
@tenant_required
@require_http_methods(["GET", "POST"])
@requires(Area.INFRASTRUCTURE, Action.ADD)
@otp_required_for_change
def domain_add(request):
    form = DomainAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        name, bits, ed25519 = data.pop("name"), data.pop("dkim_bits"), data.pop("ed25519")
        try:
            domain = services.create_domain(
                request.tenant, name, dkim_bits=bits, ed25519=ed25519, acting_user=request.user, **data
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"{domain.name} added: publish the records below, then check now.")
            return redirect("domain-detail", pk=domain.pk)
    return render(request, "domains/domain_add.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@tenant_required
@require_GET
@requires(Area.INFRASTRUCTURE, Action.VIEW)
def domain_detail(request, pk, settings_form=None):
    domain = _domain(request, pk)
    may_change = may(request, Area.INFRASTRUCTURE, Action.CHANGE)
    allowed, reason = domain.can_send()
    context = {
        "domain": domain,
        "records": dns_records(domain),
        "zone_file": zone_snippet(record_plan(domain)),
        "keys": domain.dkim_keys.order_by("-created"),
        "can_send": allowed,
        "cannot_send_reason": reason,
        "may_change": may_change,
        "may_delete": may(request, Area.INFRASTRUCTURE, Action.DELETE),
        "settings_form": settings_form or (DomainSettingsForm(instance=domain) if may_change else None),
        "rotate_form": DkimRotateForm() if may_change else None,
        "badges": DNS_CHECK_BADGES,
        "warning_badge": WARNING_BADGE,
        "pending_state": DkimKeyState.PENDING,
        "ok_status": DNSCheckStatus.OK,
    }
    return render(request, "domains/domain_detail.html", context, status=400 if settings_form else 200)


@login_required
@tenant_required
@require_POST
@requires(Area.INFRASTRUCTURE, Action.CHANGE)
@otp_required_for_change
def domain_edit(request, pk):
    domain = _domain(request, pk)
    form = DomainSettingsForm(request.POST, instance=SendingDomain.objects.get(pk=domain.pk))
    if not form.is_valid():
        request.method = "GET"
        return domain_detail(request, pk, settings_form=form)
    try:
        services.update_domain(domain, acting_user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        form_errors_to_messages(request, exc)
    else:
        messages.success(request, "Settings saved. The record plan below reflects them: update your DNS if it changed.")
    return redirect("domain-detail", pk=domain.pk)


class DomainVerbView(ObjectVerbView):
    model = SendingDomain


class DomainVerifyView(DomainVerbView):
    def perform(self, request, domain):
        checks = services.verify_domain(domain, acting_user=request.user)
        domain.refresh_from_db()
        bad = [c for c in checks if c.status != DNSCheckStatus.OK]
        text = (
            f"Checked {len(checks)} records of {domain.name}: {len(checks) - len(bad)} OK, {len(bad)} not. "
            f"Status: {domain.get_status_display()}."
        )
        if bad:  # said as a warning, not a success
            messages.warning(request, text)
            return ""
        return text


class DomainDeleteView(DomainVerbView):
    action = Action.DELETE

    def perform(self, request, domain):
        services.delete_domain(domain, acting_user=request.user)
        return f"{domain.name} deleted."

    def success_url(self, domain):
        return reverse("domain-list")


class DkimRotateView(DomainVerbView):
    def perform(self, request, domain):
        form = DkimRotateForm(request.POST)
        if not form.is_valid():
            raise ValidationError("Choose a key type.")
        key = services.rotate_dkim_key(domain, acting_user=request.user, **key_choice_to_args(form.cleaned_data["key"]))
        return f"New key {key.selector}: publish {key.dns_name} (below); it signs once it verifies."


@login_required
@tenant_required
@require_POST
@requires(Area.INFRASTRUCTURE, Action.CHANGE)
@otp_required_for_change
@sudo_required
def dkim_export(request, pk, key_id):
    """Download a private key (PEM). Needs a code entered within OTP_SUDO_SECONDS; audited `dkim.export`."""
    domain = _domain(request, pk)
    key = get_object_or_404(DkimKey, domain=domain, pk=key_id)
    pem = services.export_private_key(key, acting_user=request.user)
    response = HttpResponse(pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{key.selector}.{domain.name}.pem"'
    response["Cache-Control"] = "no-store"
    return response
