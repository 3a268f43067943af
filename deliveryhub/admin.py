"""Django admin: OTP-protected for every app, and read-only for the audit log."""

from django.contrib import admin
from django_otp.admin import OTPAdminSite

from .auth_views import admin_login, logout_view
from .models import ApiKey, AuditEntry, Job, Membership, Tenant


class DeliveryHubAdminSite(OTPAdminSite):
    """The platform operators' tool: superusers with a verified second factor only.

    Its changelists show every tenant's rows, so no other staff account may open it, whatever its permissions.
    """

    def has_permission(self, request):
        return super().has_permission(request) and request.user.is_superuser


# Every app registers on admin.site; make that site require a superuser with a verified second factor.
admin.site.__class__ = DeliveryHubAdminSite
admin.site.site_header = "DeliveryHub administration"
# Sign in (password, then second factor) through our own pages, and sign out through ours (audited).
admin.site.login = admin_login
admin.site.logout = logout_view
admin_site = admin.site


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "is_active", "created"]
    search_fields = ["slug", "name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role"]
    list_filter = ["role", "tenant"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "role", "scope", "expires", "revoked", "last_used"]
    readonly_fields = ["prefix", "digest", "last_used", "last_used_ip", "uuid"]
    list_filter = ["role", "scope"]

    def has_add_permission(self, request):
        return False  # keys are created with create_api_key or the UI, which show the raw key once


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["seq", "time", "tenant", "actor_name", "action", "object_type", "object_repr"]
    list_filter = ["action", "actor_type"]
    search_fields = ["object_repr", "actor_name", "request_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "status", "progress", "created", "completed"]
    readonly_fields = [f.name for f in Job._meta.fields]
