"""UI pages of the queues app: messages (list with filters and per-state counts, detail; both refresh themselves while
anything shown is unfinished), routes, bounce rules, and the Test inbox (live, and truthful about where mail goes).

Every page reaches objects through `for_request()`; writes go through `queues.services` or the models' validation.
"""

import email
import email.policy

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from deliveryhub.choices import Action, Area
from deliveryhub.generic_views import ObjectDeleteView, ObjectEditView, ObjectListView, ObjectVerbView, PanelView
from domains.models import SendingDomain

from . import services
from .choices import MESSAGE_STATUS_BADGES, MessageStatus
from .constants import TEST_INBOX_PAGE_SIZE
from .delivery.destination import mail_path
from .filtersets import BounceRuleFilterSet, MessageFilterSet, RouteFilterSet
from .forms import BounceRuleForm, RouteForm, TestMessageForm
from .models import BounceRule, CapturedMessage, Message, Route
from .tables import BounceRuleTable, MessageTable, RouteTable

NAV = "queues/_nav.html"
REFRESH_SECONDS = 3  # how often a page showing unfinished messages refreshes itself
TEST_INBOX_SENT_KEPT = 5  # test messages sent from this session whose progress the Test inbox follows


# -- messages ------------------------------------------------------------------------------------------------------


class MessageListView(ObjectListView):
    """Messages of the current tenant, newest first; the table refreshes itself while a message shown is unfinished."""

    model = Message
    table_class = MessageTable
    filterset_class = MessageFilterSet
    title = "Messages"
    nav_template = NAV
    nav_active = "messages"
    count_field = "status"
    count_badges = MESSAGE_STATUS_BADGES
    template_name = "queues/message_list.html"
    empty_text = "No messages yet: send one from the Test inbox, the API (POST /api/v1/messages/) or SMTP submission."

    def narrow(self, queryset):
        return queryset.select_related("content", "sending_domain").defer("content__raw")

    refresh_seconds = REFRESH_SECONDS

    def unfinished(self, message):
        return not message.is_finished


class MessageDetailView(PanelView):
    model = Message

    def get(self, request, uuid):
        queryset = self.get_queryset(request).select_related("content", "sending_domain", "ip_pool", "source_ip")
        message = get_object_or_404(queryset, uuid=uuid)
        may_change = self.may(request, Action.CHANGE)
        context = {
            "message": message,
            "waiting_for": message.waiting_for(),
            "attempts": message.delivery_attempts.order_by("time", "id"),
            "events": message.events.order_by("time", "id"),
            "headers": bytes(message.content.raw).split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace"),
            "may_cancel": may_change and message.status in services.CANCELLABLE,
            "may_release": may_change and message.status == MessageStatus.HELD,
            "refresh_seconds": REFRESH_SECONDS,
        }
        return render(request, "queues/message_detail.html", context)


class MessageVerbView(ObjectVerbView):
    model = Message
    area = Area.SENDING
    lookup_field = lookup_url_kwarg = "uuid"


class MessageCancelView(MessageVerbView):
    def perform(self, request, message):
        services.cancel_message(message, acting_user=request.user)
        return "The message is cancelled."


class MessageReleaseView(MessageVerbView):
    def perform(self, request, message):
        services.release_message(message, acting_user=request.user)
        return "The message is queued again."


# -- routes --------------------------------------------------------------------------------------------------------


def demo_capture_note():
    """What happens to mail no route matches, in words (the Routes and Test inbox pages both say it)."""
    if settings.DEMO_MODE:
        return (
            "Demo mode is on: mail to a domain that no route matches goes to the demo capture server and appears in "
            "the Test inbox. Mail to a domain a route matches goes to that route's relay and leaves this machine."
        )
    return (
        "Demo mode is off: mail to a domain that no route matches goes to that domain's MX hosts, i.e. to the real "
        "recipient. Mail to a domain a route matches goes to that route's relay."
    )


class RouteListView(ObjectListView):
    model = Route
    table_class = RouteTable
    filterset_class = RouteFilterSet
    title = "Routes"
    nav_template = NAV
    nav_active = "routes"
    add_url_name = "route-add"
    template_name = "queues/route_list.html"
    description = (
        "A route sends mail for matching recipient domains to a fixed relay (a smarthost) instead of their MX hosts. "
        "Patterns: example.com, *.example.com (subdomains) or * (everything); the most specific match wins."
    )
    empty_text = "No routes."

    def extra_context(self, request):
        check = request.GET.get("check", "").strip().lower().lstrip("@").rpartition("@")[2]
        return {
            "capture_note": demo_capture_note(),
            "demo_mode": settings.DEMO_MODE,
            "check": check,
            "check_path": mail_path(request.tenant.pk, check) if check else None,
        }


class RouteEditView(ObjectEditView):
    model = Route
    form_class = RouteForm
    nav_template = NAV
    nav_active = "routes"
    list_url_name = "route-list"

    def success_url(self, obj):
        return reverse("route-list")

    def cancel_url(self, instance):
        return reverse("route-list")

    def extra_context(self, request, instance):
        return {"intro": demo_capture_note()}


class RouteDeleteView(ObjectDeleteView):
    model = Route
    list_url_name = "route-list"


# -- bounce rules --------------------------------------------------------------------------------------------------


class BounceRuleListView(ObjectListView):
    """Admins' classification rules, applied before the shipped defaults: a tenant's own, and (operators) global
    ones."""

    model = BounceRule
    table_class = BounceRuleTable
    filterset_class = BounceRuleFilterSet
    title = "Bounce rules"
    nav_template = NAV
    nav_active = "bounce-rules"
    every_tenant = True
    add_url_name = "bounce-rule-add"
    count_field = "action"
    description = (
        "How replies are classified before the shipped rules: a reply code, an enhanced status code and a text "
        "pattern decide a category and an action (tenant rules first, then global ones, lower priority first)."
    )
    empty_text = "No rules of your own: the shipped rules (queues/data/bounce_rules.tsv) classify every reply."

    def narrow(self, queryset):
        return queryset.select_related("tenant")


class BounceRuleEditView(ObjectEditView):
    model = BounceRule
    form_class = BounceRuleForm
    nav_template = NAV
    nav_active = "bounce-rules"
    every_tenant = True
    list_url_name = "bounce-rule-list"

    def new_object(self, request):
        return BounceRule() if request.principal.is_platform else super().new_object(request)

    def form_kwargs(self, request):
        return {"platform": request.principal.is_platform}

    def success_url(self, obj):
        return reverse("bounce-rule-list")

    def cancel_url(self, instance):
        return reverse("bounce-rule-list")


class BounceRuleDeleteView(ObjectDeleteView):
    model = BounceRule
    every_tenant = True
    list_url_name = "bounce-rule-list"


# -- the Test inbox ------------------------------------------------------------------------------------------------


def default_sender(request):
    """`test@<the tenant's first domain that may send now>`, or "" when none may."""
    domains = SendingDomain.objects.for_request(request).order_by("name").prefetch_related("dkim_keys")
    for domain in domains:
        if domain.can_send()[0]:
            return f"test@{domain.name}"
    return ""


def message_parts(raw):
    """(html, text) bodies of a captured message as its recipient's mail program would show them."""
    parsed = email.message_from_bytes(bytes(raw), policy=email.policy.default)
    parts = []
    for kind in ("html", "plain"):
        body = parsed.get_body(preferencelist=(kind,))
        try:
            parts.append(body.get_content() if body is not None else "")
        except (LookupError, ValueError):  # an unknown charset or a broken part: show the source instead
            parts.append("")
    return tuple(parts)


class TestInboxView(PanelView):
    """What the demo capture server received (this tenant's mail), a form to send a test message that stays on the
    page, and the inbox list that refreshes itself (`?fragment=inbox`, polled with htmx)."""

    model = CapturedMessage
    area = Area.SENDING

    def required_action(self, request):
        return Action.ADD if request.method == "POST" else Action.VIEW

    def get(self, request):
        if request.GET.get("fragment") == "inbox":
            return render(request, "queues/_test_inbox_list.html", self.inbox_context(request))
        form = TestMessageForm(tenant=request.tenant, initial={"sender": default_sender(request)})
        return self.render_page(request, form)

    def post(self, request):
        form = TestMessageForm(request.POST, tenant=request.tenant)
        if form.is_valid():
            data = form.cleaned_data
            submission = services.Submission(sender=data["sender"], to=[data["to"]], subject=data["subject"],
                                             text=data["text"], tag="test")  # fmt: skip
            try:
                accepted = services.accept_messages(request.tenant, submission)
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    field = TestMessageForm.SERVICE_FIELDS.get(field, field)
                    for text in errors:
                        form.add_error(field if field in form.fields else None, text)
            else:
                message = accepted.messages[0]
                sent = [str(message.uuid), *request.session.get("test_inbox_sent", [])]
                request.session["test_inbox_sent"] = sent[:TEST_INBOX_SENT_KEPT]
                messages.success(request, f"Test message to {message.rcpt_to} queued: it goes {form.path.text}.")
                return redirect(f"{reverse('test-inbox')}?sent={message.uuid}")
        return self.render_page(request, form, status=400)

    def inbox_context(self, request):
        captured = CapturedMessage.objects.for_request(request).select_related("message").defer("raw")
        page = Paginator(captured, TEST_INBOX_PAGE_SIZE).get_page(request.GET.get("page"))
        sent_ids = request.session.get("test_inbox_sent", [])
        sent = list(Message.objects.for_request(request).filter(uuid__in=sent_ids).select_related("content"))
        sent.sort(key=lambda m: sent_ids.index(str(m.uuid)))
        return {"page": page, "sent": sent, "refresh_seconds": REFRESH_SECONDS, "now": timezone.now()}

    def render_page(self, request, form, status=200):
        selected = None
        if request.GET.get("show"):
            captured = CapturedMessage.objects.for_request(request).select_related("message")
            selected = get_object_or_404(captured, pk=request.GET["show"])
            selected.source = bytes(selected.raw).decode("utf-8", "replace")
            selected.html, selected.text = message_parts(selected.raw)
        context = {
            **self.inbox_context(request),
            "form": form,
            "selected": selected,
            "capture_note": demo_capture_note(),
            "demo_mode": settings.DEMO_MODE,
            "capture": f"{settings.CAPTURE_SMTP_HOST}:{settings.CAPTURE_SMTP_PORT}",
            "routes": Route.objects.for_request(request).filter(enabled=True),
            "may_send": self.may(request, Action.ADD),
        }
        return render(request, "queues/test_inbox.html", context, status=status)
