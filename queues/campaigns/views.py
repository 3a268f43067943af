"""Campaign pages: campaigns (list, editor, preview, test send, report with live progress and a chart), lists and
their imports, contacts, the suppression centre.

Every page reaches objects through `restrict()` and the current tenant (another tenant's object is a 404) and
checks the role for the area (Area.CAMPAIGNS; the suppression centre is Area.SENDING, like the API); writes are
POSTs that call the services.
"""

import datetime
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from deliveryhub.choices import Action, Area
from deliveryhub.exceptions import Conflict
from deliveryhub.views import may, requires, tenant_required

from ..choices import CampaignState, ImportKind, SubscriptionStatus
from ..constants import CAMPAIGN_PAGE_SIZE, CONTACT_PAGE_SIZE, SUPPRESSION_PAGE_SIZE
from ..filtersets import SuppressionFilterSet
from ..models import Campaign, Contact, ContactImport, ContactList, Subscription, Suppression
from . import contacts as contact_services
from . import imports, services, stats, suppressions
from .api.serializers import with_subscribed_count
from .fanout import recipient_contacts
from .filtersets import CampaignFilterSet, ContactFilterSet
from .forms import (
    CampaignForm,
    ContactForm,
    ContactListForm,
    ImportForm,
    SuppressionAddForm,
    SuppressionImportForm,
    TestSendForm,
)

REFRESH_SECONDS = 2  # how often a running campaign's or import's page refreshes its progress fragment
LIVE_STATES = (CampaignState.SCHEDULED, CampaignState.SENDING, CampaignState.PAUSED)


def _errors_into(form, error):
    for field, errors in error.message_dict.items():
        field = {"from": "from_header"}.get(field, field)
        for text in errors:
            form.add_error(field if field in form.fields else None, text)


def _mine(model, request, action=Action.VIEW):
    return model.objects.restrict(request.principal, action).for_tenant(request.tenant)


# ---------------------------------------------------------------------------------------------------------------------
# Campaigns
# ---------------------------------------------------------------------------------------------------------------------


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.VIEW)
def campaign_list(request):
    filterset = CampaignFilterSet(request.GET or None, queryset=_mine(Campaign, request).prefetch_related("lists"))
    page = Paginator(filterset.qs, CAMPAIGN_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filter": filterset,
        "may_add": may(request, Area.CAMPAIGNS, Action.ADD),
        "has_lists": _mine(ContactList, request).exists(),
        "active": "campaigns",
        "states": CampaignState.choices,
    }
    return render(request, "queues/campaigns/campaign_list.html", context)


@login_required
@tenant_required
@require_http_methods(["GET", "POST"])
@requires(Area.CAMPAIGNS, Action.ADD)
def campaign_create(request):
    form = CampaignForm(request.POST or None, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.create_campaign(request.tenant, acting_user=request.user, **form.cleaned_data)
        except ValidationError as error:
            _errors_into(form, error)
        else:
            messages.success(request, f"Campaign {campaign} saved as a draft: preview it, send a test, then start it.")
            return redirect("campaign-detail", uuid=campaign.uuid)
    status = 400 if request.method == "POST" else 200
    return render(request, "queues/campaigns/campaign_form.html", {"form": form, "campaign": None}, status=status)


def _campaign(request, uuid, action=Action.VIEW):
    return get_object_or_404(
        _mine(Campaign, request, action).select_related("sending_domain", "ip_pool", "parent"), uuid=uuid
    )


@login_required
@tenant_required
@require_http_methods(["GET", "POST"])
@requires(Area.CAMPAIGNS, Action.CHANGE)
def campaign_edit(request, uuid):
    campaign = _campaign(request, uuid, Action.CHANGE)
    if not campaign.is_editable:
        messages.warning(request, "Only a draft can be edited.")
        return redirect("campaign-detail", uuid=campaign.uuid)
    initial = {name: getattr(campaign, name) for name in services.DRAFT_FIELDS if name != "lists"}
    initial["lists"] = list(campaign.lists.all())
    form = CampaignForm(request.POST or None, tenant=request.tenant, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            services.update_campaign(campaign, acting_user=request.user, **changed)
        except ValidationError as error:
            _errors_into(form, error)
        else:
            messages.success(request, "Draft saved.")
            return redirect("campaign-detail", uuid=campaign.uuid)
    status = 400 if request.method == "POST" else 200
    return render(request, "queues/campaigns/campaign_form.html", {"form": form, "campaign": campaign}, status=status)


def _progress_context(request, campaign):
    figures = stats.campaign_stats(campaign)
    done = figures["delivered"] + figures["bounced"] + figures["expired"] + figures["cancelled"] + figures["suppressed"]
    total = campaign.recipients or 1
    return {
        "campaign": campaign,
        "stats": figures,
        "live": campaign.state in LIVE_STATES,
        "percent": min(100, int(100 * done / total)),
        "refresh_seconds": REFRESH_SECONDS,
        "may_change": may(request, Area.CAMPAIGNS, Action.CHANGE),
    }


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.VIEW)
def campaign_detail(request, uuid):
    campaign = _campaign(request, uuid)
    context = _progress_context(request, campaign)
    context.update(
        {
            "lists": with_subscribed_count(campaign.lists.all()),
            "test_form": TestSendForm(),
            "may_add": may(request, Area.CAMPAIGNS, Action.ADD),
            "follow_ups": campaign.follow_ups.all(),
            "audience": recipient_contacts(campaign).count() if campaign.state == CampaignState.DRAFT else None,
        }
    )
    return render(request, "queues/campaigns/campaign_detail.html", context)


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.VIEW)
def campaign_progress(request, uuid):
    """The live figures fragment the report page polls (htmx) while the campaign runs."""
    campaign = _campaign(request, uuid)
    return render(request, "queues/campaigns/_progress.html", _progress_context(request, campaign))


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.VIEW)
def campaign_chart(request, uuid):
    """Sends per minute, for the report's chart."""
    return JsonResponse({"per_minute": stats.sends_per_minute(_campaign(request, uuid))})


def _contact_by_address(request, campaign, address):
    address = (address or "").strip().lower()
    if not address:
        return None
    return _mine(Contact, request).filter(email=address).first()


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.VIEW)
def campaign_preview(request, uuid):
    campaign = _campaign(request, uuid)
    wanted = request.GET.get("contact", "")
    contact = _contact_by_address(request, campaign, wanted)
    if contact is None and not wanted:
        contact = recipient_contacts(campaign).order_by("pk").first()
    subject, html, text = services.preview(campaign, contact)
    context = {
        "campaign": campaign,
        "contact": contact,
        "wanted": wanted,
        "subject": subject,
        "html": html,
        "text": text,
        "not_found": bool(wanted) and contact is None,
    }
    return render(request, "queues/campaigns/campaign_preview.html", context)


VERBS = {
    "start": services.start_campaign,
    "pause": services.pause_campaign,
    "resume": services.resume_campaign,
    "cancel": services.cancel_campaign,
}
VERB_MESSAGES = {
    "start": "Campaign started.",
    "pause": "Campaign paused: no new batches go out; messages already handed out finish.",
    "resume": "Campaign resumed.",
    "cancel": "Campaign cancelled: nothing more is sent.",
}


@login_required
@tenant_required
@require_POST
@requires(Area.CAMPAIGNS, Action.CHANGE)
def campaign_action(request, uuid, verb):
    campaign = _campaign(request, uuid, Action.CHANGE)
    try:
        if verb in VERBS:
            campaign = VERBS[verb](campaign, acting_user=request.user)
            text = VERB_MESSAGES[verb]
            if verb == "start" and campaign.state == CampaignState.SCHEDULED and campaign.send_at > timezone.now():
                text = f"Campaign scheduled for {campaign.send_at:%Y-%m-%d %H:%M} UTC."
            messages.success(request, text)
            problems = campaign.gate_report.get("problems") if verb == "start" else None
            if problems:
                messages.warning(
                    request,
                    "Sent with warnings (fewer than 5,000 recipients at Gmail, Yahoo and "
                    "Microsoft): " + " ".join(problems),
                )
        elif verb == "resend":
            follow_up = services.resend_campaign(campaign, acting_user=request.user)
            messages.success(request, "A follow-up draft to the failed and deferred recipients: check it and start it.")
            return redirect("campaign-detail", uuid=follow_up.uuid)
        elif verb == "delete":
            services.delete_campaign(campaign, acting_user=request.user)
            messages.success(request, f"Draft {campaign} deleted.")
            return redirect("campaign-list")
        else:
            raise Http404("No such action.")
    except services.GateRefused as error:
        messages.error(
            request, "The deliverability gate refused to start this campaign. Fix: " + " ".join(error.problems)
        )
    except Conflict as error:
        messages.error(request, str(error.detail))
    except ValidationError as error:
        for text in error.messages:
            messages.error(request, text)
    return redirect("campaign-detail", uuid=campaign.uuid)


@login_required
@tenant_required
@require_POST
@requires(Area.CAMPAIGNS, Action.CHANGE)
def campaign_test_send(request, uuid):
    campaign = _campaign(request, uuid, Action.CHANGE)
    form = TestSendForm(request.POST)
    if form.is_valid():
        contact = _contact_by_address(request, campaign, form.cleaned_data["contact"])
        try:
            rows = services.test_send(campaign, form.cleaned_data["to"], contact=contact, acting_user=request.user)
        except ValidationError as error:
            for text in error.messages:
                messages.error(request, text)
        else:
            messages.success(request, f"Test sent to {', '.join(m.rcpt_to for m in rows)} (subject marked [Test]).")
    else:
        messages.error(request, "Give up to 5 addresses for the test.")
    return redirect("campaign-detail", uuid=campaign.uuid)


# ---------------------------------------------------------------------------------------------------------------------
# Lists, imports, contacts
# ---------------------------------------------------------------------------------------------------------------------


@login_required
@tenant_required
@require_http_methods(["GET", "POST"])
@requires(Area.CAMPAIGNS, Action.VIEW)
def list_list(request):
    form = ContactListForm(request.POST or None)
    if request.method == "POST":
        if not may(request, Area.CAMPAIGNS, Action.ADD):
            raise PermissionDenied("Your role cannot add lists.")
        if form.is_valid():
            try:
                contact_list = contact_services.create_list(
                    request.tenant, acting_user=request.user, **form.cleaned_data
                )
            except ValidationError as error:
                _errors_into(form, error)
            else:
                messages.success(request, f"List {contact_list} created: import contacts into it.")
                return redirect("contactlist-detail", pk=contact_list.pk)
    lists = with_subscribed_count(_mine(ContactList, request))
    context = {"lists": lists, "form": form, "may_add": may(request, Area.CAMPAIGNS, Action.ADD), "active": "lists"}
    return render(request, "queues/campaigns/list_list.html", context, status=400 if form.errors else 200)


def _list(request, pk, action=Action.VIEW):
    return get_object_or_404(_mine(ContactList, request, action), pk=pk)


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.VIEW)
def list_detail(request, pk):
    contact_list = _list(request, pk)
    subscriptions = Subscription.objects.filter(contact_list=contact_list).select_related("contact")
    query = request.GET.get("q", "").strip()
    if query:
        subscriptions = subscriptions.filter(contact__email__icontains=query.lower())
    page = Paginator(subscriptions.order_by("contact__email"), CONTACT_PAGE_SIZE).get_page(request.GET.get("page"))
    counts = dict(
        Subscription.objects.filter(contact_list=contact_list).order_by().values_list("status").annotate(n=Count("id"))
    )
    context = {
        "list": contact_list,
        "page": page,
        "q": query,
        "counts": counts,
        "import_form": ImportForm(),
        "imports": contact_list.imports.all()[:10],
        "may_add": may(request, Area.CAMPAIGNS, Action.ADD),
        "may_export": may(request, Area.CAMPAIGNS, Action.EXPORT),
        "active": "lists",
        "may_delete": may(request, Area.CAMPAIGNS, Action.DELETE),
    }
    return render(request, "queues/campaigns/list_detail.html", context)


@login_required
@tenant_required
@require_POST
@requires(Area.CAMPAIGNS, Action.ADD)
def list_import(request, pk):
    contact_list = _list(request, pk, Action.ADD)
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        try:
            imp = imports.start_import(
                request.tenant,
                data["file"],
                contact_list=contact_list,
                mode=data["mode"],
                email_column=data["email_column"],
                mapping=data["mapping"],
                acting_user=request.user,
            )
        except ValidationError as error:
            for text in error.messages:
                messages.error(request, text)
        else:
            return redirect("contactimport-detail", uuid=imp.uuid)
    else:
        for errors in form.errors.values():
            for text in errors:
                messages.error(request, text)
    return redirect("contactlist-detail", pk=contact_list.pk)


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.EXPORT)
def list_export(request, pk):
    contact_list = _list(request, pk, Action.EXPORT)
    response = StreamingHttpResponse(contact_services.export_rows(contact_list), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{slugify(contact_list.name) or "list"}.csv"'
    return response


@login_required
@tenant_required
@require_POST
@requires(Area.CAMPAIGNS, Action.DELETE)
def list_delete(request, pk):
    contact_list = _list(request, pk, Action.DELETE)
    if contact_list.campaigns.exclude(state__in=(CampaignState.DRAFT, CampaignState.SENT, CampaignState.CANCELLED)):
        messages.error(request, "A list that a running campaign sends to cannot be deleted.")
        return redirect("contactlist-detail", pk=contact_list.pk)
    contact_list.delete()
    messages.success(request, f"List {contact_list} deleted (its contacts stay).")
    return redirect("contactlist-list")


def _import(request, uuid, action=Action.VIEW):
    return get_object_or_404(_mine(ContactImport, request, action).select_related("contact_list"), uuid=uuid)


def _import_context(request, imp):
    return {"imp": imp, "refresh_seconds": REFRESH_SECONDS, "may_change": may(request, Area.CAMPAIGNS, Action.CHANGE)}


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.VIEW)
def import_detail(request, uuid):
    imp = _import(request, uuid)
    return render(request, "queues/campaigns/import_detail.html", {**_import_context(request, imp), "active": "lists"})


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.VIEW)
def import_progress(request, uuid):
    return render(request, "queues/campaigns/_import_progress.html", _import_context(request, _import(request, uuid)))


@login_required
@tenant_required
@require_POST
@requires(Area.CAMPAIGNS, Action.CHANGE)
def import_cancel(request, uuid):
    imp = _import(request, uuid, Action.CHANGE)
    try:
        imports.cancel_import(imp, acting_user=request.user)
        messages.success(request, "Cancelling: the import stops after the chunk it is writing.")
    except Conflict as error:
        messages.error(request, str(error.detail))
    return redirect("contactimport-detail", uuid=imp.uuid)


@login_required
@tenant_required
@require_GET
@requires(Area.CAMPAIGNS, Action.VIEW)
def import_report(request, uuid):
    imp = _import(request, uuid)
    text = imports.report_text(imp)
    if text is None:
        raise Http404("This import has no validation report.")
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{imp.uuid}-report.csv"'
    return response


@login_required
@tenant_required
@require_http_methods(["GET", "POST"])
@requires(Area.CAMPAIGNS, Action.VIEW)
def contact_list(request):
    form = ContactForm(request.POST or None)
    if request.method == "POST":
        if not may(request, Area.CAMPAIGNS, Action.ADD):
            raise PermissionDenied("Your role cannot add contacts.")
        if form.is_valid():
            data = form.cleaned_data
            try:
                contact = contact_services.create_contact(
                    request.tenant,
                    email=data["email"],
                    name=data["name"],
                    attributes=data["attributes"],
                    acting_user=request.user,
                )
            except ValidationError as error:
                _errors_into(form, error)
            else:
                messages.success(request, f"Contact {contact} added.")
                return redirect("contact-detail", pk=contact.pk)
    filterset = ContactFilterSet(request.GET or None, queryset=_mine(Contact, request).distinct())
    filterset.form.fields["list"].queryset = _mine(ContactList, request)
    page = Paginator(filterset.qs.order_by("email"), CONTACT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filter": filterset,
        "form": form,
        "may_add": may(request, Area.CAMPAIGNS, Action.ADD),
        "active": "contacts",
    }
    return render(request, "queues/campaigns/contact_list.html", context, status=400 if form.errors else 200)


@login_required
@tenant_required
@require_http_methods(["GET", "POST"])
@requires(Area.CAMPAIGNS, Action.VIEW)
def contact_detail(request, pk):
    contact = get_object_or_404(_mine(Contact, request), pk=pk)
    if request.method == "POST":
        if not may(request, Area.CAMPAIGNS, Action.CHANGE):
            raise PermissionDenied("Your role cannot change contacts.")
        contact_list = get_object_or_404(_mine(ContactList, request), pk=request.POST.get("list"))
        try:
            contact_services.set_subscription(
                contact, contact_list, request.POST.get("status", ""), acting_user=request.user
            )
            messages.success(request, f"{contact} is now {request.POST.get('status')} on {contact_list}.")
        except ValidationError as error:
            for text in error.messages:
                messages.error(request, text)
        return redirect("contact-detail", pk=contact.pk)
    context = {
        "contact": contact,
        "subscriptions": contact.subscriptions.select_related("contact_list"),
        "other_lists": _mine(ContactList, request).exclude(subscriptions__contact=contact),
        "suppressed": Suppression.objects.filter(tenant_id=contact.tenant_id, address=contact.email).first(),
        "statuses": SubscriptionStatus.choices,
        "may_change": may(request, Area.CAMPAIGNS, Action.CHANGE),
        "may_delete": may(request, Area.CAMPAIGNS, Action.DELETE),
        "active": "contacts",
        "attributes_json": json.dumps(contact.attributes, ensure_ascii=False, indent=1),
    }
    return render(request, "queues/campaigns/contact_detail.html", context)


@login_required
@tenant_required
@require_POST
@requires(Area.CAMPAIGNS, Action.DELETE)
def contact_delete(request, pk):
    contact = get_object_or_404(_mine(Contact, request, Action.DELETE), pk=pk)
    contact_services.delete_contacts([contact], acting_user=request.user)
    messages.success(request, f"Contact {contact} deleted.")
    return redirect("contact-list")


# ---------------------------------------------------------------------------------------------------------------------
# The suppression centre (Area.SENDING, like the suppressions API)
# ---------------------------------------------------------------------------------------------------------------------


@login_required
@tenant_required
@require_GET
@requires(Area.SENDING, Action.VIEW)
def suppression_list(request):
    filterset = SuppressionFilterSet(
        request.GET or None, queryset=_mine(Suppression, request).select_related("campaign", "message")
    )
    page = Paginator(filterset.qs, SUPPRESSION_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filter": filterset,
        "add_form": SuppressionAddForm(),
        "import_form": SuppressionImportForm(),
        "may_add": may(request, Area.SENDING, Action.ADD),
        "may_delete": may(request, Area.SENDING, Action.DELETE),
        "may_export": may(request, Area.SENDING, Action.EXPORT),
        "active": "suppressions",
        "imports": _mine(ContactImport, request).filter(kind=ImportKind.SUPPRESSIONS)[:5]
        if may(request, Area.CAMPAIGNS, Action.VIEW)
        else [],
    }
    return render(request, "queues/campaigns/suppression_list.html", context)


@login_required
@tenant_required
@require_POST
@requires(Area.SENDING, Action.ADD)
def suppression_add(request):
    form = SuppressionAddForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        expires = None
        if data["expires"]:
            expires = timezone.make_aware(datetime.datetime.combine(data["expires"], datetime.time.max))
        try:
            created = suppressions.add_suppressions(
                request.tenant,
                data["addresses"].splitlines(),
                reason=data["reason"],
                source=f"Added by {request.user}",
                expires=expires,
                acting_user=request.user,
            )
        except ValidationError as error:
            for text in error.messages:
                messages.error(request, text)
        else:
            messages.success(request, f"{len(created)} address(es) added to the suppression list.")
    else:
        messages.error(request, "Give one address per line.")
    return redirect("suppression-list")


@login_required
@tenant_required
@require_POST
@requires(Area.SENDING, Action.ADD)
def suppression_import(request):
    if not may(request, Area.CAMPAIGNS, Action.ADD):
        raise PermissionDenied("Your role cannot run imports.")
    form = SuppressionImportForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            imp = imports.start_import(
                request.tenant,
                form.cleaned_data["file"],
                kind=ImportKind.SUPPRESSIONS,
                email_column=form.cleaned_data["email_column"],
                acting_user=request.user,
            )
        except ValidationError as error:
            for text in error.messages:
                messages.error(request, text)
        else:
            return redirect("contactimport-detail", uuid=imp.uuid)
    return redirect("suppression-list")


@login_required
@tenant_required
@require_POST
@requires(Area.SENDING, Action.DELETE)
def suppression_delete(request, pk):
    suppression = get_object_or_404(_mine(Suppression, request, Action.DELETE), pk=pk)
    suppressions.remove_suppression(suppression, acting_user=request.user)
    messages.success(request, f"{suppression.address} removed from the suppression list: it may be sent to again.")
    return redirect("suppression-list")


@login_required
@tenant_required
@require_GET
@requires(Area.SENDING, Action.EXPORT)
def suppression_export(request):
    filterset = SuppressionFilterSet(request.GET or None, queryset=_mine(Suppression, request))
    response = StreamingHttpResponse(suppressions.export_rows(filterset.qs), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="suppressions.csv"'
    return response
