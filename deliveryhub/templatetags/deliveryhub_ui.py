"""Template helpers of the UI: navigation items that appear once their app exists, Bootstrap form widgets, badges."""

import json

from django import forms, template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ..choices import JOB_STATUS_BADGES, ROLE_BADGES

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_item(context, url_name, label):
    """A top-navigation link to `url_name`, or nothing when no app provides that URL (yet)."""
    try:
        url = reverse(url_name)
    except NoReverseMatch:
        return ""
    request = context.get("request")
    path = getattr(request, "path", "")
    active = path == url if url == "/" else path.startswith(url)
    return format_html(
        '<li class="nav-item"><a class="nav-link{}" href="{}"{}>{}</a></li>',
        " active" if active else "",
        url,
        mark_safe(' aria-current="page"') if active else "",
        label,
    )


@register.filter
def bs(field):
    """Render a bound form field's widget with Bootstrap classes (and is-invalid when it has errors)."""
    widget = field.field.widget
    if isinstance(widget, forms.CheckboxInput):
        css = "form-check-input"
    elif isinstance(widget, forms.Select):
        css = "form-select"
    else:
        css = "form-control"
    if field.errors:
        css += " is-invalid"
    return field.as_widget(attrs={"class": css})


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
