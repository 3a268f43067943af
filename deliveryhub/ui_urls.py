"""UI pages (server-rendered). The sign-in and OTP pages come from `deliveryhub.auth_urls`."""

from django.urls import include, path

from reports.monitoring_urls import platform_urlpatterns as platform_monitoring
from reports.monitoring_urls import tenant_urlpatterns as monitoring

from . import views

urlpatterns = [
    path("", include("deliveryhub.auth_urls")),
    path("", views.dashboard, name="dashboard"),
    path("tenant/switch/", views.switch_tenant, name="switch-tenant"),
    path("settings/", views.settings_index, name="settings"),
    path("settings/api-keys/", views.apikey_list, name="apikey-list"),
    path("settings/api-keys/new/", views.apikey_create, name="apikey-create"),
    path("settings/api-keys/<int:pk>/revoke/", views.ApiKeyRevokeView.as_view(), name="apikey-revoke"),
    path("settings/members/", views.member_list, name="member-list"),
    path("settings/members/add/", views.member_add, name="member-add"),
    path("settings/members/<int:pk>/role/", views.MemberRoleView.as_view(), name="member-role"),
    path("settings/members/<int:pk>/remove/", views.MemberRemoveView.as_view(), name="member-remove"),
    path("audit/", views.audit_log, name="audit-log"),
    path("platform/tenants/", views.TenantListView.as_view(), name="tenant-list"),
    path("platform/tenants/new/", views.TenantEditView.as_view(), name="tenant-add"),
    path("platform/tenants/<int:pk>/", views.TenantDetailView.as_view(), name="tenant-detail"),
    path("platform/tenants/<int:pk>/edit/", views.TenantEditView.as_view(), name="tenant-edit"),
    path("jobs/<uuid:uuid>/", views.job_detail, name="job-detail"),
    path("jobs/<uuid:uuid>/status/", views.job_status, name="job-status"),
    path("jobs/<uuid:uuid>/download/", views.job_download, name="job-download"),
    path("", include("deliveryhub.export_urls")),
    path("", include("queues.urls")),
    path("ip-pools/", include("ippools.urls")),
    path("domains/", include("domains.urls")),
    path("reports/", include("reports.urls")),
    path("monitoring/", include(monitoring)),
    path("platform/monitoring/", include(platform_monitoring)),
    path("platform/backup/", include("deliveryhub.backup_urls")),
]
