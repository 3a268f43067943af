"""Admin of the queues app: read-mostly views of messages, editable configuration. Everything through restrict()."""

from django.contrib import admin

from deliveryhub.admin import admin_site

from .models import (
    BounceRule,
    CapturedMessage,
    DeliveryAttempt,
    Message,
    MessageEvent,
    Route,
    SmtpCredential,
    Suppression,
)


class RestrictedAdmin(admin.ModelAdmin):
    def get_queryset(self, request):
        return super().get_queryset(request).restrict(request.user, "view")


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in DeliveryAttempt._meta.fields]


class EventInline(admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in MessageEvent._meta.fields]


@admin.register(Message, site=admin_site)
class MessageAdmin(RestrictedAdmin):
    list_display = ["uuid", "tenant", "rcpt_to", "status", "attempts", "next_attempt_at", "created"]
    list_filter = ["status", "priority"]
    search_fields = ["rcpt_to", "uuid", "tag"]
    readonly_fields = [f.name for f in Message._meta.fields]
    inlines = [AttemptInline, EventInline]

    def has_add_permission(self, request):
        return False


@admin.register(Route, site=admin_site)
class RouteAdmin(RestrictedAdmin):
    list_display = ["pattern", "tenant", "host", "port", "tls_required", "priority", "enabled"]
    exclude = ["password"]


@admin.register(Suppression, site=admin_site)
class SuppressionAdmin(RestrictedAdmin):
    list_display = ["address", "tenant", "reason", "created"]
    search_fields = ["address"]
    list_filter = ["reason"]


@admin.register(BounceRule, site=admin_site)
class BounceRuleAdmin(RestrictedAdmin):
    list_display = ["priority", "tenant", "code", "enhanced", "text", "category", "action", "enabled"]


@admin.register(SmtpCredential, site=admin_site)
class SmtpCredentialAdmin(RestrictedAdmin):
    """Listed and changed here; created in the panel, the API or `create_smtp_credential` (which generate the password
    and show it once): an add form here would make a login without a password, one that can never log in."""

    list_display = ["username", "tenant", "is_active", "last_used"]
    exclude = ["password_digest"]
    readonly_fields = ["username", "tenant", "last_used"]

    def has_add_permission(self, request):
        return False


@admin.register(CapturedMessage, site=admin_site)
class CapturedMessageAdmin(RestrictedAdmin):
    list_display = ["received", "mail_from", "subject", "dkim_result"]
    exclude = ["raw"]
