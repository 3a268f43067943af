"""Tables of the core (django-tables2) and the columns every app's tables share: badges, links, actions."""

import django_tables2 as tables
from django.template.loader import render_to_string
from django.utils.html import format_html

from .choices import ROLE_BADGES
from .models import Tenant


class BadgeColumn(tables.Column):
    """A choice shown as a coloured badge (`badges`: value -> Bootstrap colour, kept beside the choices)."""

    def __init__(self, badges, **kwargs):
        self.badges = badges
        super().__init__(**kwargs)

    def render(self, value, record, bound_column):
        label = getattr(record, f"get_{bound_column.accessor}_display", lambda: value)()
        return format_html('<span class="badge text-bg-{}">{}</span>', self.badges.get(value, "secondary"), label)

    def value(self, value, record, bound_column):
        return getattr(record, f"get_{bound_column.accessor}_display", lambda: value)()


class BoolColumn(tables.BooleanColumn):
    """yes/no in the page and in CSV."""

    def __init__(self, **kwargs):
        kwargs.setdefault("yesno", "yes,no")
        super().__init__(**kwargs)


class ActionsColumn(tables.TemplateColumn):
    """Edit/delete buttons for who may change the row (`template_name` receives `record` and the table's context);
    never in CSV."""

    def __init__(self, template_name="generic/_row_actions.html", **kwargs):
        kwargs.setdefault("verbose_name", "")
        kwargs.setdefault("orderable", False)
        kwargs.setdefault("exclude_from_export", True)
        kwargs.setdefault("attrs", {"td": {"class": "text-end text-nowrap"}})
        super().__init__(template_name=template_name, **kwargs)


class PartialColumn(tables.Column):
    """A cell rendered from a template snippet (`template_name`, given `record`), with a plain `value` for CSV."""

    def __init__(self, template_name, **kwargs):
        self.template_name = template_name
        kwargs.setdefault("empty_values", ())
        super().__init__(**kwargs)

    def render(self, record, table):
        return render_to_string(self.template_name, {"record": record, "request": getattr(table, "request", None)})


class TenantTable(tables.Table):
    name = tables.Column(linkify=True)
    slug = tables.Column()
    time_zone = tables.Column(verbose_name="Time zone")
    members = tables.Column(accessor="member_count", verbose_name="Members")
    owners = tables.Column(accessor="owner_memberships", orderable=False, verbose_name="Owners")
    is_active = BoolColumn(verbose_name="Active")
    created = tables.DateTimeColumn(format="Y-m-d")

    class Meta:
        model = Tenant
        fields = ["name", "slug", "time_zone", "members", "owners", "is_active", "created"]
        attrs = {"id": "tenant-table", "class": "table table-sm table-hover align-middle mb-0"}


    def render_owners(self, value):
        return ", ".join(m.user.get_username() for m in value) or "—"

    value_owners = render_owners


def role_badge(role, label):
    return format_html('<span class="badge text-bg-{}">{}</span>', ROLE_BADGES.get(role, "secondary"), label)
