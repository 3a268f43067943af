"""UI of the IP pools app: delivery nodes, IP addresses (state, reputation, listings, warm-up), pools (members,
weights, grants), warm-up plans (an editable day table), blocklist zones and history, throttle rules.

Everyone reads what `restrict()` lets them see; platform objects are created, changed and deleted by platform
principals from an OTP-verified session, through the same models' validation and services as the API, audited.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django_rq import get_connection
from rq import Worker

from deliveryhub.choices import Action
from deliveryhub.generic_views import (
    ObjectDeleteView,
    ObjectEditView,
    ObjectListView,
    ObjectVerbView,
    PanelView,
    error_messages,
)
from queues.constants import DELIVERY_QUEUE_PREFIX

from . import services
from .choices import IP_STATE_BADGES, LISTING_STATUS_BADGES, NODE_STATUS_BADGES, PTR_STATUS_BADGES, IPState
from .filtersets import (
    BlocklistCheckFilterSet,
    BlocklistZoneFilterSet,
    DeliveryNodeFilterSet,
    IPAddressFilterSet,
    IPPoolFilterSet,
    ThrottleRuleFilterSet,
    WarmupPlanFilterSet,
)
from .forms import (
    AddMemberForm,
    BlocklistZoneForm,
    DeliveryNodeForm,
    GrantForm,
    IPAddressForm,
    IPPoolForm,
    PauseForm,
    StartWarmupForm,
    ThrottleRuleForm,
    WarmupPlanForm,
    WeightForm,
    day_formset,
)
from .models import (
    BlocklistCheck,
    BlocklistZone,
    DeliveryNode,
    IPAddress,
    IPPool,
    IPPoolMember,
    ThrottleRule,
    WarmupPlan,
)
from .tables import (
    BlocklistCheckTable,
    BlocklistZoneTable,
    DeliveryNodeTable,
    IPAddressTable,
    IPPoolTable,
    ThrottleRuleTable,
    WarmupPlanTable,
)

NAV = "ippools/_nav.html"


def _decorate(ip):
    ip.state_badge_class = IP_STATE_BADGES.get(ip.state, "secondary")
    ip.ptr_badge_class = PTR_STATUS_BADGES.get(ip.ptr_status, "secondary")
    ip.warmup_view = services.warmup_status(ip)
    return ip


class PlatformListView(ObjectListView):
    """A list of platform objects (edit/delete buttons for platform principals), under the app's navigation."""

    nav_template = NAV


# -- delivery nodes ------------------------------------------------------------------------------------------------


class NodeListView(PlatformListView):
    model = DeliveryNode
    table_class = DeliveryNodeTable
    filterset_class = DeliveryNodeFilterSet
    title = "Delivery nodes"
    nav_active = "nodes"
    count_field = "status"
    count_badges = NODE_STATUS_BADGES
    add_url_name = "node-add"
    description = "Hosts running delivery workers (DELIVERYHUB_NODE=<name>): each sends only from the IPs it owns."
    empty_text = "No delivery node yet: add one, then start its workers with DELIVERYHUB_NODE=<name>."

    def narrow(self, queryset):
        return queryset.annotate(ip_count=Count("ip_addresses"))


class NodeEditView(ObjectEditView):
    model = DeliveryNode
    form_class = DeliveryNodeForm
    nav_template = NAV
    nav_active = "nodes"
    list_url_name = "node-list"


class NodeDeleteView(ObjectDeleteView):
    model = DeliveryNode
    list_url_name = "node-list"


def node_workers(node):
    """The RQ workers listening on the node's delivery queue (name, state, current job), from Redis."""
    queue = f"{DELIVERY_QUEUE_PREFIX}{node.name}"
    workers = Worker.all(connection=get_connection("default"))
    return [w for w in workers if queue in w.queue_names()]


class NodeDetailView(PanelView):
    model = DeliveryNode

    def get(self, request, pk):
        node = get_object_or_404(self.get_queryset(request), pk=pk)
        ips = IPAddress.objects.for_request(request).filter(node=node).select_related("warmup_plan")
        ips = [_decorate(ip) for ip in ips]
        context = {
            "node": node,
            "ips": ips,
            "workers": node_workers(node),
            "badge": NODE_STATUS_BADGES.get(node.status, "secondary"),
            "may_change": self.may(request, Action.CHANGE),
        }
        return render(request, "ippools/node_detail.html", context)


# -- IP addresses --------------------------------------------------------------------------------------------------


class IPAddressListView(PlatformListView):
    model = IPAddress
    table_class = IPAddressTable
    filterset_class = IPAddressFilterSet
    title = "IP addresses"
    nav_active = "addresses"
    count_field = "state"
    count_badges = IP_STATE_BADGES
    add_url_name = "ipaddress-add"
    empty_text = "No IP addresses you may use."

    def narrow(self, queryset):
        return queryset.select_related("node", "warmup_plan")


class IPAddressEditView(ObjectEditView):
    model = IPAddress
    form_class = IPAddressForm
    nav_template = NAV
    nav_active = "addresses"
    list_url_name = "ipaddress-list"

    def save(self, request, form):
        with transaction.atomic():
            ip = form.save()
            services.announce_capacity_change(IPAddress, f"{ip} changed")
        return ip


class IPAddressDeleteView(ObjectDeleteView):
    model = IPAddress
    list_url_name = "ipaddress-list"


class IPAddressDetailView(PanelView):
    model = IPAddress

    def get(self, request, pk):
        ip = get_object_or_404(self.get_queryset(request).select_related("node", "warmup_plan"), pk=pk)
        _decorate(ip)
        latest = {}
        for check in ip.blocklist_checks.order_by("-checked_at", "-id"):
            latest.setdefault(check.zone, check)
        may_change = self.may(request, Action.CHANGE)
        context = {
            "ip": ip,
            "latest_checks": sorted(latest.values(), key=lambda c: c.zone),
            "events": ip.events.all()[:50],
            "reputation_history": ip.reputation_history.all()[:30],
            "memberships": ip.memberships.filter(pool__in=IPPool.objects.for_request(request)).select_related("pool"),
            "is_platform": may_change,
            "warmup_form": StartWarmupForm(initial={"plan": ip.warmup_plan_id, "day": ip.warmup_day}),
            "pause_form": PauseForm() if may_change else None,
            "may_delete": self.may(request, Action.DELETE),
        }
        return render(request, "ippools/ipaddress_detail.html", context)


class IPVerbView(ObjectVerbView):
    model = IPAddress


class IPCheckView(IPVerbView):
    def perform(self, request, ip):
        checks = services.check_blocklists(ip, force=True, acting_user=request.user)
        listed = [c.zone for c in checks if c.status == "listed"]
        services.check_ptr(ip)
        return f"{ip}: listed on {', '.join(listed)}." if listed else f"{ip}: on no blocklist checked."


class IPPauseView(IPVerbView):
    def perform(self, request, ip):
        form = PauseForm(request.POST)
        services.pause_ip(ip, reason=form.cleaned_data["reason"] if form.is_valid() else "", acting_user=request.user)
        return f"{ip} is paused."


class IPResumeView(IPVerbView):
    def perform(self, request, ip):
        services.resume_ip(ip, acting_user=request.user)
        return f"{ip} is sending again ({ip.get_state_display()})."


class IPStopWarmupView(IPVerbView):
    def perform(self, request, ip):
        services.stop_warmup(ip, acting_user=request.user)
        return f"{ip} is active without warm-up caps: mail waiting for its capacity goes now."


class IPStartWarmupView(PanelView):
    """GET: the schedule the chosen plan gives this IP, day by day with dates, and what happens to mail over a cap,
    to confirm. POST (confirmed): start it, at once for mail already waiting."""

    model = IPAddress
    action = Action.CHANGE
    otp_before_form = True

    def get_ip(self, request, pk):
        return get_object_or_404(self.get_queryset(request).select_related("warmup_plan", "node"), pk=pk)

    def get(self, request, pk):
        ip = self.get_ip(request, pk)
        form = StartWarmupForm(request.GET or None, initial={"plan": ip.warmup_plan_id, "day": ip.warmup_day})
        schedule = None
        if form.is_valid():
            plan, day = form.cleaned_data["plan"], form.cleaned_data["day"]
            if day > plan.length:
                form.add_error("day", f"The plan has days 1 to {plan.length}.")
            else:
                schedule = services.warmup_schedule(ip, plan, day=day)
        context = {"ip": ip, "form": form, "schedule": schedule, "time_zone": ip.time_zone}
        return render(request, "ippools/ipaddress_warmup.html", context, status=400 if form.errors else 200)

    def post(self, request, pk):
        ip = self.get_ip(request, pk)
        form = StartWarmupForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a plan and a day.")
            return redirect("ipaddress-detail", pk=ip.pk)
        try:
            services.start_warmup(ip, form.cleaned_data["plan"], day=form.cleaned_data["day"], acting_user=request.user)
        except ValidationError as error:
            for text in error_messages(error):
                messages.error(request, text)
        else:
            messages.success(
                request, f"{ip} is warming up on {form.cleaned_data['plan']}, day {form.cleaned_data['day']}: "
                "mail waiting for capacity is looked at again now."
            )  # fmt: skip
        return redirect("ipaddress-detail", pk=ip.pk)


# -- pools ---------------------------------------------------------------------------------------------------------


class PoolListView(PlatformListView):
    model = IPPool
    table_class = IPPoolTable
    filterset_class = IPPoolFilterSet
    title = "IP pools"
    nav_active = "pools"
    count_field = "purpose"
    add_url_name = "ippool-add"
    description = "Sets of source IPs by purpose: shared (open to every tenant, or granted) or dedicated to one tenant."
    empty_text = "No pools you may use yet."

    def narrow(self, queryset):
        return (
            queryset.select_related("tenant")
            .prefetch_related("grants__tenant")
            .annotate(member_count=Count("members", distinct=True))
        )


class PoolEditView(ObjectEditView):
    model = IPPool
    form_class = IPPoolForm
    nav_template = NAV
    nav_active = "pools"
    list_url_name = "ippool-list"


class PoolDeleteView(ObjectDeleteView):
    model = IPPool
    list_url_name = "ippool-list"


class PoolDetailView(PanelView):
    model = IPPool

    def get(self, request, pk):
        pool = get_object_or_404(self.get_queryset(request).select_related("tenant"), pk=pk)
        members = pool.members.select_related("ip__node", "ip__warmup_plan")
        for member in members:
            _decorate(member.ip)
        grants = pool.grants.select_related("tenant")
        if not request.principal.is_platform:
            grants = grants.filter(tenant_id__in=request.principal.roles)
        may_change = self.may(request, Action.CHANGE)
        in_pool = [m.ip_id for m in members]
        add_form = AddMemberForm() if may_change else None
        if add_form is not None:
            add_form.fields["ip"].queryset = add_form.fields["ip"].queryset.exclude(pk__in=in_pool)
        context = {
            "pool": pool,
            "members": members,
            "grants": grants,
            "is_platform": may_change,
            "add_form": add_form,
            "grant_form": GrantForm() if may_change and pool.is_shared and not pool.all_tenants else None,
            "may_delete": self.may(request, Action.DELETE),
        }
        return render(request, "ippools/pool_detail.html", context)


class PoolVerbView(ObjectVerbView):
    model = IPPool


class PoolAddMemberView(PoolVerbView):
    def perform(self, request, pool):
        form = AddMemberForm(request.POST)
        if not form.is_valid():
            raise ValidationError("Choose an IP address and a weight from 1 to 1000.")
        services.assign_ip(pool, form.cleaned_data["ip"], weight=form.cleaned_data["weight"], acting_user=request.user)
        return f"{form.cleaned_data['ip']} is in {pool} (weight {form.cleaned_data['weight']})."


class PoolMemberWeightView(PoolVerbView):
    def perform(self, request, pool):
        member = get_object_or_404(IPPoolMember, pool=pool, pk=self.kwargs["member_pk"])
        form = WeightForm(request.POST)
        if not form.is_valid():
            raise ValidationError("A weight from 1 to 1000.")
        services.assign_ip(pool, member.ip, weight=form.cleaned_data["weight"], acting_user=request.user)
        return f"{member.ip} now has weight {form.cleaned_data['weight']} in {pool}."


class PoolRemoveMemberView(PoolVerbView):
    def perform(self, request, pool):
        member = get_object_or_404(IPPoolMember, pool=pool, pk=self.kwargs["member_pk"])
        services.remove_ip(pool, member.ip, acting_user=request.user)
        return f"{member.ip} left {pool}."


class PoolGrantView(PoolVerbView):
    def perform(self, request, pool):
        form = GrantForm(request.POST)
        if not form.is_valid():
            raise ValidationError("Choose a tenant.")
        services.grant_pool(pool, form.cleaned_data["tenant"], acting_user=request.user)
        return f"{form.cleaned_data['tenant']} may use {pool}."


class PoolRevokeView(PoolVerbView):
    def perform(self, request, pool):
        grant = get_object_or_404(pool.grants.select_related("tenant"), pk=self.kwargs["grant_pk"])
        services.revoke_pool_grant(pool, grant.tenant, acting_user=request.user)
        return f"{grant.tenant} may no longer use {pool}."


# -- warm-up plans -------------------------------------------------------------------------------------------------


class WarmupPlanListView(PlatformListView):
    model = WarmupPlan
    table_class = WarmupPlanTable
    filterset_class = WarmupPlanFilterSet
    title = "Warm-up plans"
    nav_active = "plans"
    add_url_name = "warmup-plan-add"
    description = "Day-by-day caps for new IPs, in total and per provider: a day repeats until under the limits."

    def narrow(self, queryset):
        return queryset.annotate(ip_count=Count("ip_addresses"))


class WarmupPlanEditView(ObjectEditView):
    """A plan's settings and its day table (one row per day; blank rows are dropped, ticked rows deleted)."""

    model = WarmupPlan
    form_class = WarmupPlanForm
    noun = "warm-up plan"
    template_name = "ippools/warmup_plan_edit.html"
    nav_template = NAV
    nav_active = "plans"
    list_url_name = "warmup-plan-list"

    def get(self, request, *args, **kwargs):
        plan = self.get_object(request)
        return self.render(request, self.get_form(request, plan), plan, days=day_formset(plan))

    def post(self, request, *args, **kwargs):
        plan = self.get_object(request)
        form, days = self.get_form(request, plan), day_formset(plan, request.POST)
        if days.is_valid():  # the model validates the days with the rest of the plan
            plan.days = [
                day for row in days.forms if not row.cleaned_data.get("DELETE") and (day := row.day()) is not None
            ]
        if days.is_valid() and form.is_valid():
            try:
                plan = services.save_warmup_plan(form.instance, acting_user=request.user)
            except ValidationError as error:
                for field, texts in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, texts)
            else:
                messages.success(request, f"Plan {plan} saved: IPs on it use the new caps now.")
                return redirect(plan.get_absolute_url())
        return self.render(request, form, plan, status=400, days=days)

    def render(self, request, form, instance, status=200, days=None):
        self.extra = {"days": days}
        return super().render(request, form, instance, status)

    def extra_context(self, request, instance):
        return self.extra


class WarmupPlanDetailView(PanelView):
    model = WarmupPlan

    def get(self, request, pk):
        plan = get_object_or_404(self.get_queryset(request), pk=pk)
        ips = IPAddress.objects.for_request(request).filter(warmup_plan=plan, state=IPState.WARMING)
        context = {"plan": plan, "ips": ips, "may_change": self.may(request, Action.CHANGE),
                   "may_delete": self.may(request, Action.DELETE) and not plan.is_builtin}  # fmt: skip
        return render(request, "ippools/warmup_plan_detail.html", context)


class WarmupPlanDeleteView(ObjectDeleteView):
    model = WarmupPlan
    list_url_name = "warmup-plan-list"

    def delete(self, request, plan):
        if plan.is_builtin:
            raise ValidationError(f"{plan} ships with DeliveryHub: copy it into a new plan instead of deleting it.")
        plan.delete()


# -- blocklists ----------------------------------------------------------------------------------------------------


class BlocklistCheckListView(ObjectListView):
    model = BlocklistCheck
    table_class = BlocklistCheckTable
    filterset_class = BlocklistCheckFilterSet
    title = "Blocklist history"
    nav_template = NAV
    nav_active = "blocklists"
    count_field = "status"
    count_badges = LISTING_STATUS_BADGES
    template_name = "ippools/blocklist_list.html"
    empty_text = "No checks yet: the sweep runs every BLOCKLIST_SWEEP_SECONDS, or check an IP now from its page."

    def narrow(self, queryset):
        return queryset.select_related("ip")

    def extra_context(self, request):
        return {"listed": IPAddress.objects.for_request(request).filter(listed=True).order_by("address")}


class BlocklistZoneListView(PlatformListView):
    model = BlocklistZone
    table_class = BlocklistZoneTable
    filterset_class = BlocklistZoneFilterSet
    title = "Blocklist zones"
    nav_active = "zones"
    add_url_name = "blocklist-zone-add"
    description = "DNS blocklists checked besides the defaults (BLOCKLIST_ZONES, BLOCKLIST_DOMAIN_ZONES)."
    empty_text = "Only the default zones are checked. Add a zone to check more."


class BlocklistZoneEditView(ObjectEditView):
    model = BlocklistZone
    form_class = BlocklistZoneForm
    nav_template = NAV
    nav_active = "zones"
    list_url_name = "blocklist-zone-list"

    def success_url(self, obj):
        return reverse("blocklist-zone-list")

    def cancel_url(self, instance):
        return reverse("blocklist-zone-list")


class BlocklistZoneDeleteView(ObjectDeleteView):
    model = BlocklistZone
    list_url_name = "blocklist-zone-list"


# -- throttle rules ------------------------------------------------------------------------------------------------


class ThrottleRuleListView(ObjectListView):
    """Every rule for operators (platform rules and each tenant's); a tenant's admins see and write their own."""

    model = ThrottleRule
    table_class = ThrottleRuleTable
    filterset_class = ThrottleRuleFilterSet
    title = "Throttle rules"
    nav_template = NAV
    nav_active = "throttles"
    every_tenant = True
    add_url_name = "throttle-rule-add"
    count_field = "provider"
    description = (
        "Limits per source IP and destination provider. A pool rule gives each of its IPs the limit; the tightest "
        "matching rule wins; a rate-limit reply also slows the pair down by itself (adaptive throttling)."
    )
    empty_text = "No throttle rules: every pair sends at the engine's defaults."

    def narrow(self, queryset):
        return queryset.select_related("tenant", "ip", "pool")


class ThrottleRuleEditView(ObjectEditView):
    model = ThrottleRule
    form_class = ThrottleRuleForm
    nav_template = NAV
    nav_active = "throttles"
    every_tenant = True
    list_url_name = "throttle-rule-list"

    def new_object(self, request):
        return ThrottleRule() if request.principal.is_platform else super().new_object(request)

    def form_kwargs(self, request):
        return {} if request.principal.is_platform else {"tenant": request.tenant}

    def success_url(self, obj):
        return reverse("throttle-rule-list")

    def cancel_url(self, instance):
        return reverse("throttle-rule-list")


class ThrottleRuleDeleteView(ObjectDeleteView):
    model = ThrottleRule
    every_tenant = True
    list_url_name = "throttle-rule-list"

