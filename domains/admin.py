"""Django admin of the domains app (platform operators). Private keys are never shown or edited here."""

from django.contrib import admin

from .models import DkimKey, DnsCheck, SendingDomain


class DkimKeyInline(admin.TabularInline):
    model = DkimKey
    fields = ["selector", "algorithm", "key_bits", "state", "activated_at", "retire_after"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # keys are created by domains.services (rotate_dkim_key)


@admin.register(SendingDomain)
class SendingDomainAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "status", "dkim_verified", "dmarc_policy", "last_checked"]
    list_filter = ["status", "dkim_verified", "dmarc_policy", "tenant"]
    search_fields = ["name"]
    readonly_fields = ["uuid", "status", "status_changed", "dkim_verified", "ownership_verified", "last_checked"]
    inlines = [DkimKeyInline]


@admin.register(DkimKey)
class DkimKeyAdmin(admin.ModelAdmin):
    list_display = ["selector", "domain", "algorithm", "key_bits", "state", "activated_at", "retire_after"]
    list_filter = ["state", "algorithm"]
    search_fields = ["selector", "domain__name"]
    exclude = ["private_key"]
    readonly_fields = [
        "tenant",
        "domain",
        "selector",
        "algorithm",
        "key_bits",
        "public_key",
        "verified_at",
        "activated_at",
        "retiring_since",
        "retire_after",
        "retired_at",
    ]

    def has_add_permission(self, request):
        return False


@admin.register(DnsCheck)
class DnsCheckAdmin(admin.ModelAdmin):
    list_display = ["domain", "kind", "subject", "status", "checked_at"]
    list_filter = ["status", "kind"]
    search_fields = ["domain__name", "name"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
