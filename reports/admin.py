"""Read-only admin pages of the reports app (changes go through the services and the panel)."""

from django.contrib import admin

from deliveryhub.admin import admin_site

from .models import DataRequest, PurgeRun, RetentionPolicy


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DataRequest, site=admin_site)
class DataRequestAdmin(ReadOnlyAdmin):
    list_display = ["uuid", "tenant", "kind", "status", "created", "completed"]
    list_filter = ["kind", "status"]
    exclude = ["subjects", "note"]  # personal data: shown in the panel to owners and compliance only


@admin.register(RetentionPolicy, site=admin_site)
class RetentionPolicyAdmin(ReadOnlyAdmin):
    list_display = ["kind", "tenant", "days"]


@admin.register(PurgeRun, site=admin_site)
class PurgeRunAdmin(ReadOnlyAdmin):
    list_display = ["started", "dry_run", "status", "total", "triggered_by"]
