"""Template helpers of the UI: navigation items that appear once their app exists, Bootstrap form widgets, badges."""

import json

from django import forms, template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ..choices import JOB_STATUS_BADGES, ROLE_BADGES, Action

register = template.Library()


def may_open(request, area=None, platform=False):
    """Whether the request's principal may open a page of `area` in the current tenant (`platform`: operators only).

    The navigation shows only what a role may open, asked the way the pages ask (`Principal.allows`)."""
    principal = getattr(request, "principal", None)
    if principal is None or not principal.is_authenticated:
        return False
    if platform or principal.is_platform:
        return principal.is_platform
    if area is None:
        return True
    tenant = getattr(request, "tenant", None)
    return tenant is not None and principal.allows(tenant.pk, area, Action.VIEW)


@register.simple_tag(takes_context=True)
def may_view(context, area=None, platform=False):
    """{% may_view "audit" as shown %}: whether the current principal may open pages of that area."""
    return may_open(context.get("request"), area, platform)


@register.simple_tag(takes_context=True)
def nav_item(context, url_name, label, area=None, platform=False):
    """A top-navigation link to `url_name`, or nothing when no app provides that URL (yet) or the principal's role
    may not open it (`area`: the permission area its pages need; `platform`: operators only)."""
    try:
        url = reverse(url_name)
    except NoReverseMatch:
        return ""
    request = context.get("request")
    if not may_open(request, area, platform):
        return ""
    path = getattr(request, "path", "")
    active = path == url if url == "/" else path.startswith(url)
    return format_html(
        '<li class="nav-item"><a class="nav-link{}" href="{}"{}>{}</a></li>',
        " active" if active else "",
        url,
        mark_safe(' aria-current="page"') if active else "",
        label,
    )


SEARCHABLE_SELECT_MIN_CHOICES = 8  # a select with more choices than this gets a search box (static/js/app.js)


@register.filter
def bs(field):
    """Render a bound form field's widget with Bootstrap classes (and is-invalid when it has errors).

    Long selects are marked `data-searchable` (app.js adds a search box); multi-selects too, whatever their length."""
    widget = field.field.widget
    attrs = {}
    if isinstance(widget, forms.CheckboxInput):
        css = "form-check-input"
    elif isinstance(widget, forms.NullBooleanSelect):  # a yes/no filter: "any" rather than Django's "Unknown"
        css = "form-select"
        widget.choices = [("unknown", "Any"), ("true", "Yes"), ("false", "No")]
    elif isinstance(widget, forms.Select):
        css = "form-select"
        choices = getattr(field.field, "choices", ())
        if isinstance(widget, forms.SelectMultiple) or len(list(choices)) > SEARCHABLE_SELECT_MIN_CHOICES:
            attrs["data-searchable"] = "true"
    else:
        css = "form-control"
    if field.errors:
        css += " is-invalid"
    return field.as_widget(attrs={"class": css, **attrs})


@register.filter
def is_checkbox(field):
    return isinstance(field.field.widget, forms.CheckboxInput)


@register.filter
def role_badge(role):
    return ROLE_BADGES.get(role, "secondary")


@register.filter
def job_badge(status):
    return JOB_STATUS_BADGES.get(status, "secondary")


@register.filter
def compact_json(value):
    """A short one-line JSON rendering of an audit snapshot (empty for None)."""
    if value in (None, "", {}):
        return ""
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False, default=str)


@register.simple_tag(takes_context=True)
def query_with(context, **changes):
    """The current query string with some parameters replaced (for pagination links keeping the filters)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        params[key] = value
    return "?" + params.urlencode()


AUDIT_VALUE_MAX_CHARS = 300  # a longer before/after value is shortened in the page (exports carry it whole)


def _shown(value):
    if value is None or value == "":
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= AUDIT_VALUE_MAX_CHARS else text[:AUDIT_VALUE_MAX_CHARS] + " …"


@register.filter
def audit_diff(entry):
    """[(field, before, after)] of an audit entry, one row per field that changed: a create lists what was set (before
    None), a delete what was there (after None), an update only the fields whose value moved."""
    before, after = entry.prechange or {}, entry.postchange or {}
    rows = []
    for field in sorted(set(before) | set(after)):
        old, new = before.get(field), after.get(field)
        if field in before and field in after and old == new:
            continue
        rows.append(
            (field, _shown(old) if field in before else None, _shown(new) if field in after else None)
        )
    return rows


@register.simple_tag(takes_context=True)
def query_params(context, *skip):
    """[(name, value)] of the current query string, every value of a repeated parameter joined by commas."""
    params = context["request"].GET
    return [(name, ",".join(v for v in params.getlist(name) if v)) for name in params if name not in skip]
