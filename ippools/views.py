"""UI of the IP pools app: pools, IP addresses (state, reputation, listings, warm-up progress), blocklist history.

Everyone reads what `restrict()` lets them; changes are POST-only, for superusers (platform objects), from an
OTP-verified session, and call the same services as the API.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from deliveryhub.choices import Action
from deliveryhub.filtersets import restrict_choices
from deliveryhub.otp import otp_required_for_change

from . import services
from .choices import IP_STATE_BADGES, LISTING_STATUS_BADGES, PTR_STATUS_BADGES
from .filtersets import BlocklistCheckFilterSet, IPAddressFilterSet
from .forms import AddMemberForm, GrantForm, PauseForm, StartWarmupForm, ThrottleRuleForm
from .models import BlocklistCheck, IPAddress, IPPool, IPPoolMember, ThrottleRule

PAGE_SIZE = 100


def _visible(model, request):
    return model.objects.restrict(request.principal, Action.VIEW)


def _platform_object(model, request, pk):
    """The object if the actor may see it (else 404) and is a platform principal (else 403)."""
    obj = get_object_or_404(_visible(model, request), pk=pk)
    if not request.principal.is_platform:
        raise PermissionDenied("Only platform administrators change IP addresses and pools.")
    return obj


def warmup_row(ip):
    """What the warm-up progress bars show: day N of M and today's count against the cap."""
    progress = ip.warmup_progress()
    if progress is None:
        return None
    caps = ip.warmup_caps()
    used = services.usage_today(ip)
    bars = []
    for key in ("total", "google", "microsoft", "yahoo", "other"):
        cap = caps.get(key)
        if cap is not None:
            bars.append(
                {
                    "name": key,
                    "used": used.get(key, 0),
                    "cap": cap,
                    "percent": min(100, round(100 * used.get(key, 0) / cap)) if cap else 100,
                }
            )
    day, days = progress
    return {"plan": ip.warmup_plan, "day": day, "days": days, "percent": round(100 * day / days), "bars": bars}


def _decorate(ip):
    ip.state_badge_class = IP_STATE_BADGES.get(ip.state, "secondary")
    ip.ptr_badge_class = PTR_STATUS_BADGES.get(ip.ptr_status, "secondary")
    ip.warmup_view = warmup_row(ip)
    return ip


@login_required
def pool_list(request):
    pools = (
        _visible(IPPool, request)
        .select_related("tenant")
        .prefetch_related("grants__tenant")
        .annotate(member_count=Count("members", distinct=True))
    )
    return render(request, "ippools/pool_list.html", {"pools": pools, "is_platform": request.principal.is_platform})


@login_required
def pool_detail(request, pk):
    pool = get_object_or_404(_visible(IPPool, request).select_related("tenant"), pk=pk)
    members = [_decorate_member(m) for m in pool.members.select_related("ip__node", "ip__warmup_plan")]
    grants = pool.grants.select_related("tenant")
    if not request.principal.is_platform:
        grants = grants.filter(tenant_id__in=request.principal.roles)
    context = {
        "pool": pool,
        "members": members,
        "grants": grants,
        "is_platform": request.principal.is_platform,
        "add_form": AddMemberForm() if request.principal.is_platform else None,
        "grant_form": GrantForm() if request.principal.is_platform and pool.is_shared else None,
    }
    return render(request, "ippools/pool_detail.html", context)


def _decorate_member(member):
    _decorate(member.ip)
    return member


@login_required
def ipaddress_list(request):
    queryset = _visible(IPAddress, request).select_related("node", "warmup_plan")
    filterset = restrict_choices(IPAddressFilterSet(request.GET, queryset=queryset), request.principal)
    page = Paginator(filterset.qs.order_by("address"), PAGE_SIZE).get_page(request.GET.get("page"))
    for ip in page:
        _decorate(ip)
    return render(request, "ippools/ipaddress_list.html", {"filterset": filterset, "page": page})


@login_required
def ipaddress_detail(request, pk):
    ip = _decorate(get_object_or_404(_visible(IPAddress, request).select_related("node", "warmup_plan"), pk=pk))
    latest = {}
    for check in ip.blocklist_checks.order_by("-checked_at", "-id"):
        latest.setdefault(check.zone, check)
    is_platform = request.principal.is_platform
    context = {
        "ip": ip,
        "latest_checks": sorted(latest.values(), key=lambda c: c.zone),
        "events": ip.events.all()[:50],
        "reputation_history": ip.reputation_history.all()[:30],
        "memberships": ip.memberships.filter(pool__in=_visible(IPPool, request)).select_related("pool"),
        "is_platform": is_platform,
        "warmup_form": StartWarmupForm() if is_platform else None,
        "pause_form": PauseForm() if is_platform else None,
    }
    return render(request, "ippools/ipaddress_detail.html", context)


@login_required
def blocklist_list(request):
    queryset = BlocklistCheck.objects.restrict(request.principal, Action.VIEW).select_related("ip")
    filterset = restrict_choices(BlocklistCheckFilterSet(request.GET, queryset=queryset), request.principal)
    page = Paginator(filterset.qs.order_by("-checked_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    listed = _visible(IPAddress, request).filter(listed=True).order_by("address")
    context = {"filterset": filterset, "page": page, "listed": listed, "badges": LISTING_STATUS_BADGES}
    return render(request, "ippools/blocklist_list.html", context)


# -- changes (POST, superusers, OTP-verified) ---------------------------------------------------------------------


@login_required
@require_POST
@otp_required_for_change
def ipaddress_check(request, pk):
    ip = _platform_object(IPAddress, request, pk)
    checks = services.check_blocklists(ip, force=True, acting_user=request.user)
    listed = [c.zone for c in checks if c.status == "listed"]
    services.check_ptr(ip)
    messages.info(request, f"{ip}: listed on {', '.join(listed)}." if listed else f"{ip}: on no blocklist checked.")
    return redirect("ipaddress-detail", pk=ip.pk)


@login_required
@require_POST
@otp_required_for_change
def ipaddress_pause(request, pk):
    ip = _platform_object(IPAddress, request, pk)
    form = PauseForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    services.pause_ip(ip, reason=reason, acting_user=request.user)
    messages.success(request, f"{ip} is paused.")
    return redirect("ipaddress-detail", pk=ip.pk)


@login_required
@require_POST
@otp_required_for_change
def ipaddress_resume(request, pk):
    ip = _platform_object(IPAddress, request, pk)
    services.resume_ip(ip, acting_user=request.user)
    messages.success(request, f"{ip} is sending again ({ip.get_state_display()}).")
    return redirect("ipaddress-detail", pk=ip.pk)


@login_required
@require_POST
@otp_required_for_change
def ipaddress_start_warmup(request, pk):
    ip = _platform_object(IPAddress, request, pk)
    form = StartWarmupForm(request.POST)
    if form.is_valid():
        try:
            services.start_warmup(ip, form.cleaned_data["plan"], day=form.cleaned_data["day"], acting_user=request.user)
            messages.success(request, f"{ip} is warming up on {form.cleaned_data['plan']}.")
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
    else:
        messages.error(request, "Choose a plan and a day.")
    return redirect("ipaddress-detail", pk=ip.pk)


@login_required
@require_POST
@otp_required_for_change
def pool_add_member(request, pk):
    pool = _platform_object(IPPool, request, pk)
    form = AddMemberForm(request.POST)
    if form.is_valid():
        try:
            services.assign_ip(
                pool, form.cleaned_data["ip"], weight=form.cleaned_data["weight"], acting_user=request.user
            )
            messages.success(request, f"{form.cleaned_data['ip']} is in {pool}.")
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
    else:
        messages.error(request, "Choose an IP address and a weight from 1 to 1000.")
    return redirect("ippool-detail", pk=pool.pk)


@login_required
@require_POST
@otp_required_for_change
def pool_remove_member(request, pk, member_pk):
    pool = _platform_object(IPPool, request, pk)
    member = get_object_or_404(IPPoolMember, pool=pool, pk=member_pk)
    services.remove_ip(pool, member.ip, acting_user=request.user)
    messages.success(request, f"{member.ip} left {pool}.")
    return redirect("ippool-detail", pk=pool.pk)


@login_required
@require_POST
@otp_required_for_change
def pool_grant(request, pk):
    pool = _platform_object(IPPool, request, pk)
    form = GrantForm(request.POST)
    if form.is_valid():
        try:
            services.grant_pool(pool, form.cleaned_data["tenant"], acting_user=request.user)
            messages.success(request, f"{form.cleaned_data['tenant']} may use {pool}.")
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
    return redirect("ippool-detail", pk=pool.pk)


# -- throttle rules (superusers only: platform rules and any tenant's) ---------------------------------------------


def _require_platform(request):
    if not request.principal.is_platform:
        raise PermissionDenied("Only platform administrators manage throttle rules here.")


@login_required
@otp_required_for_change
def throttle_rule_list(request):
    """Every throttle rule, and (POST) a new one from the form below the list."""
    _require_platform(request)
    form = ThrottleRuleForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            with transaction.atomic():
                rule = form.save()
            messages.success(request, f"Throttle rule {rule} added.")
            return redirect("throttle-rule-list")
        messages.error(request, "The rule was not saved: see the form below.")
    rules = ThrottleRule.objects.restrict(request.principal, Action.VIEW).select_related("tenant", "ip", "pool")
    return render(request, "ippools/throttle_rule_list.html", {"rules": rules, "form": form})


@login_required
@require_POST
@otp_required_for_change
def throttle_rule_delete(request, pk):
    _require_platform(request)
    rule = get_object_or_404(ThrottleRule.objects.restrict(request.principal, Action.DELETE), pk=pk)
    with transaction.atomic():
        rule.delete()
    messages.success(request, f"Throttle rule {rule} deleted.")
    return redirect("throttle-rule-list")
