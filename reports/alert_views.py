"""
Alerting pages: rules (list, detail with the 7-day preview, editor with a live preview, delete, the recommended
rules for a tenant), alerts (history, detail with its notifications, acknowledge) and notification channels (list,
editor, delete, a test notification). Generic views (deliveryhub.generic_views): another tenant's rule, alert or
channel is a 404; viewers read, admins change (with their second factor); every change is audited.
"""

import base64
import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from deliveryhub import audit
from deliveryhub.choices import Action, Area
from deliveryhub.generic_views import ObjectDeleteView, ObjectEditView, ObjectListView, ObjectVerbView, PanelView

from . import alerts, channels
from .choices import ALERT_STATE_BADGES, AlertState
from .filtersets import AlertChannelFilterSet, AlertFilterSet, AlertRuleFilterSet
from .forms import AlertChannelForm, AlertRuleForm
from .models import Alert, AlertChannel, AlertRule
from .tables import AlertChannelTable, AlertRuleTable, AlertTable

NAV = "reports/monitoring/_nav.html"


# ---------------------------------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------------------------------


class AlertRuleListView(ObjectListView):
    """Every rule for operators (the platform's and each tenant's); a tenant's members see their own."""

    model = AlertRule
    table_class = AlertRuleTable
    filterset_class = AlertRuleFilterSet
    template_name = "reports/alerts/rule_list.html"
    title = "Alert rules"
    nav_template = NAV
    nav_active = "rules"
    every_tenant = True
    add_url_name = "alert-rule-add"
    count_field = "severity"
    count_badges = {"info": "info", "warning": "warning", "critical": "danger"}
    description = ("Conditions worth telling someone about: rates over a window of the roll-ups with a volume floor, "
                   "the queue now, or events (blocklist listings, warm-up step-backs, failing domains).")  # fmt: skip
    empty_text = "No alert rules yet."

    def narrow(self, queryset):
        return queryset.select_related("tenant").prefetch_related("channels").annotate(
            firing_count=Count("alerts", filter=Q(alerts__state=AlertState.FIRING))
        ).order_by("tenant_id", "name", "pk")  # GROUP BY drops Meta.ordering

    def extra_context(self, request):
        may_install = (not request.principal.is_platform and request.tenant is not None
                       and self.may(request, Action.ADD))  # fmt: skip
        return {"may_install_defaults": may_install}


class AlertRuleDetailView(PanelView):
    model = AlertRule
    every_tenant = True
    lookup_url_kwarg = "pk"

    def get(self, request, pk):
        rule = get_object_or_404(self.get_queryset(request).select_related("tenant", "pool", "domain", "campaign"),
                                 pk=pk)  # fmt: skip
        history = rule.alerts.all()[:50]
        return render(request, "reports/alerts/rule_detail.html", {
            "rule": rule, "preview": alerts.preview(rule), "history": history, "view": self,
            "may_change": self.may(request, Action.CHANGE), "may_delete": self.may(request, Action.DELETE),
            "channels": rule.channels.all(),
        })  # fmt: skip


class AlertRuleEditView(ObjectEditView):
    model = AlertRule
    form_class = AlertRuleForm
    template_name = "reports/alerts/rule_edit.html"
    nav_template = NAV
    nav_active = "rules"
    every_tenant = True
    list_url_name = "alert-rule-list"
    noun = "alert rule"

    def new_object(self, request):
        return AlertRule() if request.principal.is_platform else super().new_object(request)

    def get_object(self, request):
        obj = super().get_object(request)
        self._channels_before = sorted(obj.channels.values_list("pk", flat=True)) if obj.pk else []
        return obj

    def form_kwargs(self, request):
        return {"tenant": None if request.principal.is_platform else request.tenant}

    def save(self, request, form):
        with transaction.atomic():
            rule = form.save()
            after = sorted(rule.channels.values_list("pk", flat=True))
            if after != self._channels_before:  # many-to-many changes are not part of the row's own audit entry
                audit.record("alert_rule.channels", obj=rule, prechange={"channels": self._channels_before},
                             postchange={"channels": after})  # fmt: skip
            return rule


class AlertRuleDeleteView(ObjectDeleteView):
    model = AlertRule
    every_tenant = True
    list_url_name = "alert-rule-list"


class AlertRuleDefaultsView(PanelView):
    """POST: give the current tenant its own copies of the recommended rules."""

    http_method_names = ["post"]
    model = AlertRule
    action = Action.ADD

    def post(self, request):
        created = alerts.install_default_rules(request.tenant, acting_user=request.user)
        if created:
            messages.success(request, f"{len(created)} recommended rule(s) added: edit them to add channels.")
        else:
            messages.info(request, "Every recommended rule is there already.")
        return redirect("alert-rule-list")


@login_required
@require_GET
def alert_rule_preview(request):
    """The editor's live preview: how often the rule as filled in would have fired over the last 7 days."""
    tenant = None if request.principal.is_platform else request.tenant
    if tenant is None and not request.principal.is_platform:
        return render(request, "reports/alerts/_preview.html", {"error": "Select a tenant first."})
    if not request.principal.is_platform and not request.principal.allows(tenant.pk, Area.INFRASTRUCTURE,
                                                                           Action.VIEW):  # fmt: skip
        return render(request, "reports/alerts/_preview.html", {"error": "Your role cannot view alert rules."})
    instance = AlertRule(tenant=tenant)
    form = AlertRuleForm(request.GET, instance=instance, tenant=tenant)
    if not form.is_valid():
        return render(request, "reports/alerts/_preview.html", {"error": "Fill in the rule to see its preview."})
    return render(request, "reports/alerts/_preview.html", {"preview": alerts.preview(form.instance)})


# ---------------------------------------------------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------------------------------------------------


class AlertListView(ObjectListView):
    model = Alert
    table_class = AlertTable
    filterset_class = AlertFilterSet
    title = "Alerts"
    nav_template = NAV
    nav_active = "alerts"
    every_tenant = True
    count_field = "state"
    count_badges = ALERT_STATE_BADGES
    description = "Every firing of every rule, open or resolved, with what it measured and who acknowledged it."
    empty_text = "No alert has fired."
    refresh_seconds = 30

    def narrow(self, queryset):
        return queryset.select_related("rule", "tenant")

    def unfinished(self, record):
        return record.state == AlertState.FIRING


class AlertDetailView(PanelView):
    model = Alert
    every_tenant = True
    lookup_url_kwarg = "pk"

    def get(self, request, pk):
        alert = get_object_or_404(self.get_queryset(request).select_related("rule", "tenant"), pk=pk)
        return render(request, "reports/alerts/alert_detail.html", {
            "alert": alert, "notifications": alert.notification_log.all(), "view": self,
            "may_acknowledge": self.may(request, Action.CHANGE) and alert.acknowledged_at is None,
        })  # fmt: skip


alert_detail = AlertDetailView.as_view()


class AlertAcknowledgeView(ObjectVerbView):
    model = Alert
    every_tenant = True

    def perform(self, request, obj):
        alerts.acknowledge(obj, acting_user=request.user)
        return f"Acknowledged: {obj}. No reminders for this firing."


# ---------------------------------------------------------------------------------------------------------------------
# Channels
# ---------------------------------------------------------------------------------------------------------------------


class AlertChannelListView(ObjectListView):
    model = AlertChannel
    table_class = AlertChannelTable
    filterset_class = AlertChannelFilterSet
    title = "Notification channels"
    nav_template = NAV
    nav_active = "channels"
    every_tenant = True
    add_url_name = "alert-channel-add"
    description = ("Where alert notifications go: email, a webhook signed per Standard Webhooks (HMAC-SHA256 with "
                   "the channel's whsec_ secret), or a Slack-compatible incoming webhook.")  # fmt: skip
    empty_text = "No channels: alerts are recorded and shown here, and notify nobody."

    def narrow(self, queryset):
        return queryset.select_related("tenant")


class AlertChannelEditView(ObjectEditView):
    model = AlertChannel
    form_class = AlertChannelForm
    nav_template = NAV
    nav_active = "channels"
    every_tenant = True
    list_url_name = "alert-channel-list"
    noun = "notification channel"

    def new_object(self, request):
        return AlertChannel() if request.principal.is_platform else super().new_object(request)

    def save(self, request, form):
        with transaction.atomic():
            channel = form.save(commit=False)
            if channel.kind != "email" and not channel.secret:
                channel.secret = channels_secret()
            channel.save()
            return channel

    def success_url(self, obj):
        return reverse("alert-channel-list")

    def cancel_url(self, instance):
        return reverse("alert-channel-list")


def channels_secret():
    """A new Standard Webhooks signing secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class AlertChannelDeleteView(ObjectDeleteView):
    model = AlertChannel
    every_tenant = True
    list_url_name = "alert-channel-list"


class AlertChannelTestView(ObjectVerbView):
    """Send a test notification through one channel now (audited: it makes us connect somewhere)."""

    model = AlertChannel
    every_tenant = True

    def perform(self, request, obj):
        body = {"type": "alert.test", "data": {"channel": obj.name, "message": "A test notification."}}
        try:
            text = "A test notification from DeliveryHub.\n"
            result = channels.send(obj, body, "[DeliveryHub] Test notification", text, message_id=f"msg_test_{obj.pk}")
        except channels.ChannelError as error:
            AlertChannel.objects.filter(pk=obj.pk).update(last_error=str(error)[:500])
            raise ValidationError(str(error)) from None
        AlertChannel.objects.filter(pk=obj.pk).update(last_error="")
        audit.record("alert_channel.test", obj=obj, message=result)
        return f"Test notification sent through {obj}: {result}."

    def success_url(self, obj):
        return reverse("alert-channel-list")

    failure_url = success_url
