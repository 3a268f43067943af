"""UI URLs of monitoring: tenant pages under /monitoring/, platform pages under /platform/monitoring/, alerting under
/monitoring/alerts/."""

from django.urls import path

from . import alert_views
from . import monitoring_views as views

tenant_urlpatterns = [
    path("", views.tenant_dashboard, name="monitoring"),
    path("domains/<int:pk>/", views.domain_drilldown, name="monitoring-domain"),
    path("ips/<str:address>/", views.ip_drilldown, name="monitoring-ip"),
    path("providers/<str:provider>/", views.provider_drilldown, name="monitoring-provider"),
    path("campaigns/<uuid:uuid>/", views.campaign_drilldown, name="monitoring-campaign"),
    path("alerts/", alert_views.AlertListView.as_view(), name="alert-list"),
    path("alerts/<int:pk>/", alert_views.alert_detail, name="alert-detail"),
    path("alerts/<int:pk>/acknowledge/", alert_views.AlertAcknowledgeView.as_view(), name="alert-acknowledge"),
    path("alert-rules/", alert_views.AlertRuleListView.as_view(), name="alert-rule-list"),
    path("alert-rules/new/", alert_views.AlertRuleEditView.as_view(), name="alert-rule-add"),
    path("alert-rules/preview/", alert_views.alert_rule_preview, name="alert-rule-preview"),
    path("alert-rules/defaults/", alert_views.AlertRuleDefaultsView.as_view(), name="alert-rule-defaults"),
    path("alert-rules/<int:pk>/", alert_views.AlertRuleDetailView.as_view(), name="alert-rule-detail"),
    path("alert-rules/<int:pk>/edit/", alert_views.AlertRuleEditView.as_view(), name="alert-rule-edit"),
    path("alert-rules/<int:pk>/delete/", alert_views.AlertRuleDeleteView.as_view(), name="alert-rule-delete"),
    path("alert-channels/", alert_views.AlertChannelListView.as_view(), name="alert-channel-list"),
    path("alert-channels/new/", alert_views.AlertChannelEditView.as_view(), name="alert-channel-add"),
    path("alert-channels/<int:pk>/edit/", alert_views.AlertChannelEditView.as_view(), name="alert-channel-edit"),
    path("alert-channels/<int:pk>/delete/", alert_views.AlertChannelDeleteView.as_view(), name="alert-channel-delete"),
    path("alert-channels/<int:pk>/test/", alert_views.AlertChannelTestView.as_view(), name="alert-channel-test"),
]

platform_urlpatterns = [
    path("", views.platform_dashboard, name="platform-monitoring"),
    path("ips/<str:address>/", views.platform_ip, name="platform-monitoring-ip"),
    path("providers/<str:provider>/", views.platform_provider, name="platform-monitoring-provider"),
    path("pools/<int:pk>/", views.platform_pool, name="platform-monitoring-pool"),
    path("tenants/<int:pk>/", views.platform_tenant, name="platform-monitoring-tenant"),
]
