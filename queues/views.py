"""UI pages of the queues app: messages (list with filters, detail), routes, the demo test inbox.

Every page reaches objects through `restrict()` and the current tenant; writes go through `queues.services`.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from deliveryhub.choices import Action, Area
from deliveryhub.exceptions import Conflict
from deliveryhub.otp import otp_required_for_change
from deliveryhub.views import may, requires, tenant_required

from . import services
from .choices import MessageStatus
from .constants import MESSAGE_PAGE_SIZE, TEST_INBOX_PAGE_SIZE
from .filtersets import MessageFilterSet
from .forms import RouteForm, TestMessageForm
from .models import CapturedMessage, Message, Route


@login_required
@tenant_required
@require_GET
@requires(Area.SENDING, Action.VIEW)
def message_list(request):
    queryset = (
        Message.objects.restrict(request.principal, Action.VIEW)
        .for_tenant(request.tenant)
        .select_related("content", "sending_domain")
        .defer("content__raw")
    )
    filterset = MessageFilterSet(request.GET or None, queryset=queryset)
    page = Paginator(filterset.qs, MESSAGE_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"filter": filterset, "page": page, "statuses": MessageStatus.choices}
    return render(request, "queues/message_list.html", context)


@login_required
@tenant_required
@require_GET
@requires(Area.SENDING, Action.VIEW)
def message_detail(request, uuid):
    message = get_object_or_404(
        Message.objects.restrict(request.principal, Action.VIEW).for_tenant(request.tenant)
        .select_related("content", "sending_domain", "ip_pool", "source_ip"),
        uuid=uuid,
    )  # fmt: skip
    context = {
        "message": message,
        "attempts": message.delivery_attempts.order_by("time", "id"),
        "events": message.events.order_by("time", "id"),
        "headers": bytes(message.content.raw).split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace"),
        "may_cancel": may(request, Area.SENDING, Action.CHANGE) and message.status in services.CANCELLABLE,
        "may_release": may(request, Area.SENDING, Action.CHANGE) and message.status == MessageStatus.HELD,
    }
    return render(request, "queues/message_detail.html", context)


@login_required
@tenant_required
@require_POST
@requires(Area.SENDING, Action.CHANGE)
def message_cancel(request, uuid):
    message = get_object_or_404(
        Message.objects.restrict(request.principal, Action.CHANGE).for_tenant(request.tenant), uuid=uuid
    )
    try:
        services.cancel_message(message, acting_user=request.user)
        messages.success(request, "The message is cancelled.")
    except Conflict as exc:  # already sent or being sent
        messages.error(request, str(exc))
    return redirect("message-detail", uuid=message.uuid)


@login_required
@tenant_required
@require_POST
@requires(Area.SENDING, Action.CHANGE)
def message_release(request, uuid):
    message = get_object_or_404(
        Message.objects.restrict(request.principal, Action.CHANGE).for_tenant(request.tenant), uuid=uuid
    )
    try:
        services.release_message(message, acting_user=request.user)
        messages.success(request, "The message is queued again.")
    except Conflict as exc:  # not held (any more)
        messages.error(request, str(exc))
    return redirect("message-detail", uuid=message.uuid)


def _render_routes(request, form=None, status=200):
    routes = Route.objects.restrict(request.principal, Action.VIEW).for_tenant(request.tenant)
    may_add = may(request, Area.INFRASTRUCTURE, Action.ADD)
    context = {
        "routes": routes,
        "form": (form or RouteForm()) if may_add else None,
        "may_delete": may(request, Area.INFRASTRUCTURE, Action.DELETE),
        "demo_mode": settings.DEMO_MODE,
    }
    return render(request, "queues/route_list.html", context, status=status)


@login_required
@tenant_required
@require_http_methods(["GET", "POST"])
@requires(Area.INFRASTRUCTURE, Action.VIEW)
@otp_required_for_change
def route_list(request):
    if request.method == "GET":
        return _render_routes(request)
    if not may(request, Area.INFRASTRUCTURE, Action.ADD):
        raise PermissionDenied("Your role cannot add routes.")
    form = RouteForm(request.POST, instance=Route(tenant=request.tenant))
    if not form.is_valid():
        return _render_routes(request, form, status=400)
    with transaction.atomic():
        route = form.save()
    messages.success(request, f"Route {route} added.")
    return redirect("route-list")


@login_required
@tenant_required
@require_POST
@requires(Area.INFRASTRUCTURE, Action.DELETE)
@otp_required_for_change
def route_delete(request, pk):
    route = get_object_or_404(
        Route.objects.restrict(request.principal, Action.DELETE).for_tenant(request.tenant), pk=pk
    )
    with transaction.atomic():
        route.delete()
    messages.success(request, f"Route {route} removed.")
    return redirect("route-list")


@login_required
@tenant_required
@require_http_methods(["GET", "POST"])
@requires(Area.SENDING, Action.VIEW)
def test_inbox(request):
    """What the demo capture server received (this tenant's mail), and a form to send a test message."""
    form = TestMessageForm(request.POST or None)
    if request.method == "POST":
        if not may(request, Area.SENDING, Action.ADD):
            raise PermissionDenied("Your role cannot send messages.")
        if form.is_valid():
            data = form.cleaned_data
            submission = services.Submission(sender=data["sender"], to=[data["to"]], subject=data["subject"],
                                             text=data["text"], tag="test")  # fmt: skip
            try:
                accepted = services.accept_messages(request.tenant, submission, acting_user=request.user)
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    field = TestMessageForm.SERVICE_FIELDS.get(field, field)
                    for text in errors:
                        form.add_error(field if field in form.fields else None, text)
            else:
                messages.success(request, "Test message queued: it should appear below within seconds.")
                return redirect("message-detail", uuid=accepted.messages[0].uuid)
    captured = CapturedMessage.objects.restrict(request.principal, Action.VIEW).for_tenant(request.tenant)
    page = Paginator(captured.defer("raw"), TEST_INBOX_PAGE_SIZE).get_page(request.GET.get("page"))
    selected = None
    if request.GET.get("show"):
        selected = get_object_or_404(captured, pk=request.GET["show"])
        selected.text = bytes(selected.raw).decode("utf-8", "replace")
    context = {"page": page, "selected": selected, "form": form, "demo_mode": settings.DEMO_MODE,
               "capture": f"{settings.CAPTURE_SMTP_HOST}:{settings.CAPTURE_SMTP_PORT}"}  # fmt: skip
    return render(request, "queues/test_inbox.html", context, status=400 if form.errors else 200)
