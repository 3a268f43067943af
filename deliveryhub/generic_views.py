"""
Generic UI views: a model's list (sortable table, filters, per-state counts and totals, CSV download), its create and
edit form, its delete and its POST verbs (pause, resume, cancel, check…), each declared in a few lines, as NetBox's
generic views do.

Every view reaches objects through `Model.objects.for_request(request, action)` (`restrict()` plus the current
tenant) and checks in one order: signed in → a current tenant (tenant-owned models) → the role allows the action (a
403; another tenant's object is a 404 from the queryset) → a change needs an OTP-verified session for owners, admins
and superusers (form pages ask before the form is filled in, not after it is submitted) → the view.
"""

import csv
from datetime import date

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, ProtectedError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views import View
from django_tables2 import RequestConfig

from .choices import Action, Area
from .exceptions import Conflict
from .exports import csv_safe
from .filtersets import restrict_choices
from .otp import otp_required_for_change, sudo_required

LIST_PAGE_SIZE = 50  # rows per page of a list
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


class _Echo:
    """A file-like object whose write() hands back what it is given (csv.writer into a streamed response)."""

    def write(self, value):
        return value


def csv_download(rows, what):
    """A streamed CSV file of `rows` (the header first), named after what it holds and today: `ip-addresses-<date>`.
    Cells that a spreadsheet would run as formulas are quoted as text."""
    writer = csv.writer(_Echo())
    lines = (writer.writerow([csv_safe(cell) for cell in row]) for row in rows)
    response = StreamingHttpResponse(lines, content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{slugify(what)}-{date.today().isoformat()}.csv"'
    return response


def error_messages(error):
    """The texts of a ValidationError (field errors prefixed with their field) or a Conflict."""
    if isinstance(error, Conflict):
        return [str(error)]
    if hasattr(error, "error_dict"):
        return [
            text if field == "__all__" else f"{field.replace('_', ' ').capitalize()}: {text}"
            for field, texts in error.message_dict.items()
            for text in texts
        ]
    return list(error.messages)


class PanelView(View):
    """The checks every panel view makes, in order, before its handler runs.

    `model` names the permission area (`model.permission_area`, or `area`); `action` the action a request needs
    (`required_action()` may vary it per method). Platform objects are read by whoever `restrict()` lets see them
    and changed by platform principals only.
    """

    model = None
    area = None
    action = Action.VIEW
    every_tenant = False  # a platform principal sees every tenant's rows here (platform rules beside tenants')
    otp_before_form = False  # a form page: send owners/admins to their second factor before they fill it in
    sudo = False  # a sensitive change: it needs a code entered within OTP_SUDO_SECONDS (a role change, a new key)
    lookup_field = "pk"  # a page about one object finds it by this field…
    lookup_url_kwarg = None  # …from this URL argument (set: an object the actor cannot see is a 404 before any 403)

    def get_area(self):
        return self.area or self.model.permission_area

    def required_action(self, request):
        return self.action

    @property
    def platform_area(self):
        return self.get_area() == Area.PLATFORM

    def allowed(self, request, action):
        principal = request.principal
        if self.platform_area:
            return action == Action.VIEW or (principal.is_platform and principal.allows(None, Area.PLATFORM, action))
        if principal.is_platform:
            return principal.allows(None, self.get_area(), action)
        return request.tenant is not None and principal.allows(request.tenant.pk, self.get_area(), action)

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        needs_tenant = not self.platform_area and not (self.every_tenant and request.principal.is_platform)
        if needs_tenant and request.tenant is None:
            messages.warning(request, "Select a tenant first.")
            return redirect("dashboard")
        lookup = kwargs.get(self.lookup_url_kwarg) if self.lookup_url_kwarg else None
        if lookup is not None and not self.reachable(request).filter(**{self.lookup_field: lookup}).exists():
            raise Http404(f"No {self.model._meta.verbose_name} {lookup} here.")
        action = self.required_action(request)
        if not self.allowed(request, action):
            where = f" in {request.tenant}" if request.tenant is not None and not self.platform_area else ""
            raise PermissionDenied(f"Your role cannot {action} {Area(self.get_area()).label.lower()}{where}.")
        handler = sudo_required(super().dispatch) if self.sudo else super().dispatch
        if action != Action.VIEW:
            handler = otp_required_for_change(handler, include_get=self.otp_before_form)
        return handler(request, *args, **kwargs)

    def reachable(self, request):
        """Objects that exist for this actor here, whatever the role allows: a platform object it may see, or a row of
        the current tenant. Anything else is a 404 before any role check; what the role then refuses is a 403."""
        if self.platform_area:
            return self.get_queryset(request, Action.VIEW)
        if self.every_tenant and request.principal.is_platform:
            return self.model.objects.all()
        return self.model.objects.for_tenant(request.tenant)

    def get_queryset(self, request, action=None):
        queryset = self.model.objects.for_request(request, action or self.action, every_tenant=self.every_tenant)
        return self.narrow(queryset)

    def narrow(self, queryset):
        """Joins and prefetches the page needs (select_related…); the rows are already restricted."""
        return queryset

    def may(self, request, action):
        return self.allowed(request, action)


class ObjectListView(PanelView):
    """A list page: the filterset shared with the API, a sortable django-tables2 table, per-state counts with the
    total above it (each a link that filters), pagination, and the whole filtered table as CSV (`?export=csv`)."""

    table_class = None
    filterset_class = None
    template_name = "generic/object_list.html"
    title = ""
    count_field = None  # e.g. "status": counts per value above the table
    count_badges = None  # value -> Bootstrap colour of its count
    add_url_name = None  # the create page, shown to who may add
    nav_template = None  # the app's sub-navigation
    nav_active = ""
    description = ""  # a sentence under the title: what the page is for
    empty_text = "Nothing here yet."
    page_size = LIST_PAGE_SIZE
    refresh_seconds = None  # the table refreshes itself this often while a row shown is unfinished (`unfinished()`)

    def get(self, request, *args, **kwargs):
        queryset = self.get_queryset(request)
        filterset = self.filterset_class(request.GET or None, queryset=queryset, request=request)
        restrict_choices(filterset, request.principal)
        rows = filterset.qs if filterset.is_bound and filterset.is_valid() else queryset
        table = self.table_class(rows, request=request, empty_text=self.get_empty_text(request, filterset))
        table.may_change, table.may_delete = self.may(request, Action.CHANGE), self.may(request, Action.DELETE)
        if request.GET.get("export") == "csv":
            return self.csv_response(table)
        RequestConfig(request, paginate={"per_page": self.page_size}).configure(table)
        context = {
            "view": self,
            "title": self.title or self.model._meta.verbose_name_plural.capitalize(),
            "table": table,
            "filterset": filterset,
            "filtered": any(v for k, v in request.GET.items() if k not in ("page", "sort")),
            "counts": self.counts(request, queryset),
            "total": rows.count(),
            "add_url": reverse(self.add_url_name) if self.add_url_name and self.may(request, Action.ADD) else None,
            "live": bool(self.refresh_seconds) and any(self.unfinished(row.record) for row in table.paginated_rows),
            **self.extra_context(request),
        }
        return render(request, self.template_name, context)

    def unfinished(self, record):
        """Whether a row is still changing by itself (then the page refreshes while it is shown)."""
        return False

    def get_empty_text(self, request, filterset):
        return "Nothing matches these filters." if filterset.is_bound else self.empty_text

    def extra_context(self, request):
        return {}

    def counts(self, request, queryset):
        """[(value, label, count, badge, url)] of `count_field` over the rows the other filters leave."""
        if not self.count_field:
            return []
        params = request.GET.copy()
        params.pop(self.count_field, None)
        params.pop("page", None)
        others = self.filterset_class(params or None, queryset=queryset, request=request)
        rows = others.qs if others.is_bound and others.is_valid() else queryset
        found = dict(rows.order_by().values_list(self.count_field).annotate(n=Count("pk")))
        field = self.model._meta.get_field(self.count_field)
        out = []
        for value, label in field.choices or [(value, value) for value in sorted(found)]:
            if value in found:
                params[self.count_field] = value
                badge = (self.count_badges or {}).get(value, "secondary")
                out.append((value, label, found[value], badge, "?" + params.urlencode()))
        return out

    def csv_response(self, table):
        """Every filtered row (not only this page), in the table's order, with the columns the page shows."""
        return csv_download(table.as_values(), self.title or self.model._meta.verbose_name_plural)


class ObjectEditView(PanelView):
    """Create (no `pk` in the URL) or edit one object with a ModelForm: the model's own validation (`clean()`,
    constraints), saved in a transaction and audited like every change; a bad form answers 400 and saves nothing."""

    form_class = None
    template_name = "generic/object_edit.html"
    otp_before_form = True
    lookup_url_kwarg = "pk"
    nav_template = None
    nav_active = ""
    success_message = "{object} saved."

    def required_action(self, request):
        return Action.CHANGE if "pk" in self.kwargs else Action.ADD

    def get_object(self, request):
        if "pk" not in self.kwargs:
            return self.new_object(request)
        return get_object_or_404(self.narrow(self.get_queryset(request, Action.CHANGE)), pk=self.kwargs["pk"])

    def new_object(self, request):
        """The unsaved instance a create form fills in (a tenant-owned one belongs to the current tenant)."""
        instance = self.model()
        if not self.platform_area and request.tenant is not None and hasattr(instance, "tenant_id"):
            instance.tenant = request.tenant
        return instance

    def get_form(self, request, instance):
        """The form; a new object's may be started from the query string (`?node=3` from a node's "Add one")."""
        initial = {} if instance.pk else {k: v for k, v in request.GET.items() if k in self.form_class.base_fields}
        return self.form_class(request.POST or None, instance=instance, initial=initial, **self.form_kwargs(request))

    def form_kwargs(self, request):
        return {}

    def save(self, request, form):
        """Write the object (a subclass calls its service instead); return the saved object."""
        with transaction.atomic():
            return form.save()

    def get(self, request, *args, **kwargs):
        instance = self.get_object(request)
        return self.render(request, self.get_form(request, instance), instance)

    def post(self, request, *args, **kwargs):
        instance = self.get_object(request)
        form = self.get_form(request, instance)
        if form.is_valid():
            try:
                obj = self.save(request, form)
            except ValidationError as error:
                if hasattr(error, "error_dict"):
                    for field, texts in error.message_dict.items():
                        form.add_error(field if field in form.fields else None, texts)
                else:
                    form.add_error(None, error.messages)
            else:
                messages.success(request, self.success_message.format(object=obj))
                return redirect(self.success_url(obj))
        return self.render(request, form, instance, status=400)

    def success_url(self, obj):
        return obj.get_absolute_url()

    def cancel_url(self, instance):
        return instance.get_absolute_url() if instance.pk else reverse(self.list_url_name)

    list_url_name = None

    noun = None  # what the title calls the object (the model's verbose name by default)

    def render(self, request, form, instance, status=200):
        verbose = self.noun or self.model._meta.verbose_name
        context = {
            "view": self,
            "form": form,
            "object": instance,
            "title": f"Edit {verbose} {instance}" if instance.pk else f"New {verbose}",
            "cancel_url": self.cancel_url(instance),
            **self.extra_context(request, instance),
        }
        return render(request, self.template_name, context, status=status)

    def extra_context(self, request, instance):
        return {}


class ObjectVerbView(PanelView):
    """A POST verb on one object (pause, resume, cancel, release, check, rotate, delete…): find it through
    `for_request()` (404), call `perform()` (a service), say what happened and go back to the object's page.

    `perform(request, obj)` returns the success message; a ValidationError or Conflict becomes an error message and
    changes nothing. `lookup_field` / `lookup_url_kwarg` find the object (`pk` by default, `uuid` for messages)."""

    http_method_names = ["post"]
    action = Action.CHANGE
    lookup_url_kwarg = "pk"

    def perform(self, request, obj):
        raise NotImplementedError

    def post(self, request, *args, **kwargs):
        obj = get_object_or_404(self.get_queryset(request), **{self.lookup_field: kwargs[self.lookup_url_kwarg]})
        try:
            text = self.perform(request, obj)
        except (ValidationError, Conflict) as error:
            for text in error_messages(error):
                messages.error(request, text)
            return redirect(self.failure_url(obj))
        if text:
            messages.success(request, text)
        return redirect(self.success_url(obj))

    def success_url(self, obj):
        return obj.get_absolute_url()

    def failure_url(self, obj):
        return obj.get_absolute_url()


class ObjectDeleteView(ObjectVerbView):
    """Delete one object (the form asks first: `data-confirm`); audited by the model's delete log. An object other
    rows still need (PROTECT) stays, with the reason."""

    action = Action.DELETE
    list_url_name = None

    def perform(self, request, obj):
        label = str(obj)
        try:
            with transaction.atomic():
                self.delete(request, obj)
        except ProtectedError as error:
            used_by = sorted({str(o._meta.verbose_name_plural) for o in error.protected_objects})
            raise ValidationError(f"{label} is still used by {', '.join(used_by)}: remove those first.") from None
        return f"{label} deleted."

    def delete(self, request, obj):
        obj.delete()

    def success_url(self, obj):
        return reverse(self.list_url_name)
