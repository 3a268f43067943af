"""UI URLs of the queues app."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("messages/", views.message_list, name="message-list"),
    path("messages/<uuid:uuid>/", views.message_detail, name="message-detail"),
    path("messages/<uuid:uuid>/cancel/", views.message_cancel, name="message-cancel"),
    path("messages/<uuid:uuid>/release/", views.message_release, name="message-release"),
    path("routes/", views.route_list, name="route-list"),
    path("routes/<int:pk>/delete/", views.route_delete, name="route-delete"),
    path("test-inbox/", views.test_inbox, name="test-inbox"),
    path("", include("queues.campaigns.urls")),
]
