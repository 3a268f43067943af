"""UI URLs of the queues app."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("messages/", views.MessageListView.as_view(), name="message-list"),
    path("messages/<uuid:uuid>/", views.MessageDetailView.as_view(), name="message-detail"),
    path("messages/<uuid:uuid>/cancel/", views.MessageCancelView.as_view(), name="message-cancel"),
    path("messages/<uuid:uuid>/release/", views.MessageReleaseView.as_view(), name="message-release"),
    path("routes/", views.RouteListView.as_view(), name="route-list"),
    path("routes/new/", views.RouteEditView.as_view(), name="route-add"),
    path("routes/<int:pk>/edit/", views.RouteEditView.as_view(), name="route-edit"),
    path("routes/<int:pk>/delete/", views.RouteDeleteView.as_view(), name="route-delete"),
    path("bounce-rules/", views.BounceRuleListView.as_view(), name="bounce-rule-list"),
    path("bounce-rules/new/", views.BounceRuleEditView.as_view(), name="bounce-rule-add"),
    path("bounce-rules/<int:pk>/edit/", views.BounceRuleEditView.as_view(), name="bounce-rule-edit"),
    path("bounce-rules/<int:pk>/delete/", views.BounceRuleDeleteView.as_view(), name="bounce-rule-delete"),
    path("test-inbox/", views.TestInboxView.as_view(), name="test-inbox"),
    path("", include("queues.campaigns.urls")),
    path("", include("queues.webhooks.urls")),
]
