"""Admin of the IP pools app (superusers only, like every platform object)."""

from django.contrib import admin

from deliveryhub.admin import admin_site

from .models import (
    BlocklistCheck,
    BlocklistZone,
    DeliveryNode,
    IPAddress,
    IPEvent,
    IPPool,
    IPPoolGrant,
    IPPoolMember,
    TenantDefaultPool,
    ThrottleRule,
    ThrottleState,
    WarmupPlan,
)


@admin.register(DeliveryNode, site=admin_site)
class DeliveryNodeAdmin(admin.ModelAdmin):
    list_display = ["name", "region", "hostname", "status", "last_heartbeat"]
    list_filter = ["status", "region"]


class IPPoolMemberInline(admin.TabularInline):
    model = IPPoolMember
    extra = 0
    readonly_fields = ["paused_by_listing"]


class IPPoolGrantInline(admin.TabularInline):
    model = IPPoolGrant
    extra = 0


@admin.register(IPAddress, site=admin_site)
class IPAddressAdmin(admin.ModelAdmin):
    list_display = ["address", "node", "state", "reputation", "listed", "warmup_plan", "warmup_day", "ptr_status"]
    list_filter = ["state", "listed", "node", "ptr_status"]
    search_fields = ["address", "ehlo_hostname"]
    readonly_fields = ["reputation", "reputation_explanation", "listed", "listed_zones"]


@admin.register(IPPool, site=admin_site)
class IPPoolAdmin(admin.ModelAdmin):
    list_display = ["name", "purpose", "tenant", "all_tenants", "region", "pause_on_listing"]
    list_filter = ["purpose", "all_tenants"]
    inlines = [IPPoolMemberInline, IPPoolGrantInline]


@admin.register(TenantDefaultPool, site=admin_site)
class TenantDefaultPoolAdmin(admin.ModelAdmin):
    list_display = ["tenant", "purpose", "pool"]


@admin.register(WarmupPlan, site=admin_site)
class WarmupPlanAdmin(admin.ModelAdmin):
    list_display = ["name", "length", "max_bounce_rate", "max_deferral_rate", "max_complaint_rate", "is_builtin"]


@admin.register(BlocklistZone, site=admin_site)
class BlocklistZoneAdmin(admin.ModelAdmin):
    list_display = ["zone", "kind", "enabled", "description"]


@admin.register(BlocklistCheck, site=admin_site)
class BlocklistCheckAdmin(admin.ModelAdmin):
    list_display = ["target", "zone", "status", "meaning", "first_seen", "checked_at"]
    list_filter = ["status", "zone"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(IPEvent, site=admin_site)
class IPEventAdmin(admin.ModelAdmin):
    list_display = ["time", "ip", "kind", "message"]
    list_filter = ["kind"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ThrottleRule, site=admin_site)
class ThrottleRuleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "tenant", "max_connections", "max_messages_per_connection", "max_per_minute",
                    "max_per_hour", "enabled"]  # fmt: skip
    list_filter = ["provider", "enabled"]


@admin.register(ThrottleState, site=admin_site)
class ThrottleStateAdmin(admin.ModelAdmin):
    list_display = ["ip", "provider", "level", "suspended_until", "backoff_seconds", "updated"]
    list_filter = ["provider", "level"]
    readonly_fields = ["ip", "provider", "level", "suspended_until", "backoff_seconds", "reason", "updated"]
