"""Tables of the IP pools UI (django-tables2): sortable, with the same columns in the page and in its CSV."""

import django_tables2 as tables
from django.template.loader import render_to_string
from django.utils.html import format_html

from deliveryhub.tables import ActionsColumn, BadgeColumn, BoolColumn, PartialColumn

from . import services
from .choices import IP_STATE_BADGES, LISTING_STATUS_BADGES, NODE_STATUS_BADGES, PTR_STATUS_BADGES
from .models import BlocklistCheck, BlocklistZone, DeliveryNode, IPAddress, IPPool, ThrottleRule, WarmupPlan


class EditableTable(tables.Table):
    """A table whose rows have edit/delete buttons for who may change them (the list view says who may)."""

    actions = ActionsColumn()


class DeliveryNodeTable(EditableTable):
    name = tables.Column(linkify=True)
    status = BadgeColumn(NODE_STATUS_BADGES)
    heartbeat = PartialColumn("ippools/_node_heartbeat.html", accessor="last_heartbeat", verbose_name="Heartbeat")
    ip_count = tables.Column(verbose_name="IPs")

    class Meta:
        model = DeliveryNode
        fields = ["name", "region", "hostname", "status", "heartbeat", "ip_count"]
        attrs = {"id": "node-table", "class": "table table-sm table-hover align-middle mb-0"}

    def value_heartbeat(self, record):
        return record.last_heartbeat.isoformat() if record.last_heartbeat else ""


class IPAddressTable(EditableTable):
    usage = None
    address = tables.Column(linkify=True, attrs={"td": {"class": "font-monospace"}})
    node = tables.Column(linkify=True)
    ehlo_hostname = tables.Column(verbose_name="EHLO")
    state = BadgeColumn(IP_STATE_BADGES)
    reputation = tables.Column()
    listed = PartialColumn("ippools/_listed_cell.html", accessor="listed", verbose_name="Blocklists")
    ptr_status = BadgeColumn(PTR_STATUS_BADGES, verbose_name="PTR")
    warmup = tables.Column(accessor="warmup_day", verbose_name="Warm-up", orderable=False)

    class Meta:
        model = IPAddress
        fields = ["address", "node", "ehlo_hostname", "state", "reputation", "listed", "ptr_status", "warmup"]
        attrs = {"id": "ip-table", "class": "table table-sm table-hover align-middle mb-0"}

    def render_reputation(self, record):
        return format_html('<span class="badge text-bg-{}" title="{}">{}</span>', record.reputation_badge,
                           record.reputation_explanation, record.reputation)  # fmt: skip

    def render_warmup(self, record):
        if self.usage is None:  # today's warm-up use of every IP on the page, read at once
            warming = [row.record for row in self.paginated_rows if row.record.warmup_progress()]
            self.usage = services.usage_today_many(warming)
        w = services.warmup_status(record, used=self.usage.get(record.pk)) if record.warmup_progress() else None
        return render_to_string("ippools/_warmup_cell.html", {"w": w})

    def value_listed(self, record):
        return record.listed_zones if record.listed else "clear"

    def value_warmup(self, record):
        progress = record.warmup_progress()
        return f"{record.warmup_plan.name}: day {progress[0]} of {progress[1]}" if progress else "warm"


class IPPoolTable(EditableTable):
    name = tables.Column(linkify=True)
    purpose = tables.Column()
    kind = PartialColumn("ippools/_pool_kind.html", accessor="tenant", verbose_name="Kind", order_by=("tenant",))
    region = tables.Column(default="any")
    member_count = tables.Column(verbose_name="IPs")
    tenants = PartialColumn("ippools/_pool_tenants.html", accessor="all_tenants", verbose_name="Tenants",
                            orderable=False)  # fmt: skip

    class Meta:
        model = IPPool
        fields = ["name", "description", "purpose", "kind", "region", "member_count", "tenants"]
        attrs = {"id": "pool-table", "class": "table table-sm table-hover align-middle mb-0"}

    def value_kind(self, record):
        return "shared" if record.is_shared else "dedicated"

    def value_tenants(self, record):
        if record.tenant_id:
            return record.tenant.name
        if record.all_tenants:
            return "all tenants"
        return ", ".join(grant.tenant.name for grant in record.grants.all())


class WarmupPlanTable(EditableTable):
    name = tables.Column(linkify=True)
    days = tables.Column(accessor="length", verbose_name="Days", orderable=False)
    first_day = tables.Column(accessor="days", verbose_name="Day 1 total", orderable=False)
    last_day = tables.Column(accessor="days", verbose_name="Last day total", orderable=False, empty_values=())
    ip_count = tables.Column(verbose_name="IPs on it")
    is_builtin = BoolColumn(verbose_name="Built in")

    class Meta:
        model = WarmupPlan
        fields = ["name", "description", "days", "first_day", "last_day", "ip_count", "is_builtin"]
        attrs = {"id": "plan-table", "class": "table table-sm table-hover align-middle mb-0"}

    def render_first_day(self, value):
        return value[0].get("total", "—") if value else "—"

    def render_last_day(self, value):
        return value[-1].get("total", "—") if value else "—"

    value_first_day = render_first_day
    value_last_day = render_last_day

    def render_description(self, value):
        return value[:80]


class BlocklistZoneTable(EditableTable):
    zone = tables.Column(linkify=lambda record: record.get_edit_url())
    kind = tables.Column()
    enabled = BoolColumn()

    class Meta:
        model = BlocklistZone
        fields = ["zone", "kind", "description", "enabled"]
        attrs = {"id": "zone-table", "class": "table table-sm table-hover align-middle mb-0"}


class BlocklistCheckTable(tables.Table):
    checked_at = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Checked")
    target = tables.Column(accessor="ip__address", verbose_name="IP / domain", order_by=("ip__address", "domain"))
    zone = tables.Column()
    status = BadgeColumn(LISTING_STATUS_BADGES)
    meaning = tables.Column()
    first_seen = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Since")

    class Meta:
        model = BlocklistCheck
        fields = ["checked_at", "target", "zone", "status", "meaning", "first_seen"]
        attrs = {"id": "blocklist-table", "class": "table table-sm table-hover align-middle mb-0"}

    def render_target(self, record):
        return record.target

    value_target = render_target


class ThrottleRuleTable(EditableTable):
    scope = tables.Column(accessor="pk", verbose_name="Scope", orderable=False)
    tenant = tables.Column(default="every tenant (platform rule)")
    provider = tables.Column(default="every provider")
    max_connections = tables.Column(verbose_name="Connections")
    max_messages_per_connection = tables.Column(verbose_name="Per connection")
    max_per_minute = tables.Column(verbose_name="Per minute")
    max_per_hour = tables.Column(verbose_name="Per hour")
    enabled = BoolColumn()

    class Meta:
        model = ThrottleRule
        fields = ["scope", "tenant", "provider", "max_connections", "max_messages_per_connection", "max_per_minute",
                  "max_per_hour", "enabled", "description"]  # fmt: skip
        attrs = {"id": "throttle-table", "class": "table table-sm table-hover align-middle mb-0"}

    def render_scope(self, record):
        return f"IP {record.ip}" if record.ip_id else f"pool {record.pool}" if record.pool_id else "every IP"

    value_scope = render_scope
