"""UI URLs of campaigns (under /campaigns/) and the public endpoints recipients reach (/u/…, /t/…)."""

from django.urls import path

from . import public, views

urlpatterns = [
    path("campaigns/", views.campaign_list, name="campaign-list"),
    path("campaigns/new/", views.campaign_create, name="campaign-create"),
    path("campaigns/lists/", views.list_list, name="contactlist-list"),
    path("campaigns/lists/<int:pk>/", views.list_detail, name="contactlist-detail"),
    path("campaigns/lists/<int:pk>/import/", views.list_import, name="contactlist-import"),
    path("campaigns/lists/<int:pk>/export/", views.list_export, name="contactlist-export"),
    path("campaigns/lists/<int:pk>/delete/", views.list_delete, name="contactlist-delete"),
    path("campaigns/imports/<uuid:uuid>/", views.import_detail, name="contactimport-detail"),
    path("campaigns/imports/<uuid:uuid>/progress/", views.import_progress, name="contactimport-progress"),
    path("campaigns/imports/<uuid:uuid>/cancel/", views.import_cancel, name="contactimport-cancel"),
    path("campaigns/imports/<uuid:uuid>/report/", views.import_report, name="contactimport-report"),
    path("campaigns/contacts/", views.contact_list, name="contact-list"),
    path("campaigns/contacts/<int:pk>/", views.contact_detail, name="contact-detail"),
    path("campaigns/contacts/<int:pk>/delete/", views.contact_delete, name="contact-delete"),
    path("campaigns/suppressions/", views.suppression_list, name="suppression-list"),
    path("campaigns/suppressions/add/", views.suppression_add, name="suppression-add"),
    path("campaigns/suppressions/import/", views.suppression_import, name="suppression-import"),
    path("campaigns/suppressions/export/", views.suppression_export, name="suppression-export"),
    path("campaigns/suppressions/<int:pk>/delete/", views.suppression_delete, name="suppression-delete"),
    path("campaigns/<uuid:uuid>/", views.campaign_detail, name="campaign-detail"),
    path("campaigns/<uuid:uuid>/edit/", views.campaign_edit, name="campaign-edit"),
    path("campaigns/<uuid:uuid>/progress/", views.campaign_progress, name="campaign-progress"),
    path("campaigns/<uuid:uuid>/chart/", views.campaign_chart, name="campaign-chart"),
    path("campaigns/<uuid:uuid>/preview/", views.campaign_preview, name="campaign-preview"),
    path("campaigns/<uuid:uuid>/test-send/", views.campaign_test_send, name="campaign-test-send"),
    path("campaigns/<uuid:uuid>/<slug:verb>/", views.campaign_action, name="campaign-action"),
    # Public: no login (see public.py).
    path("u/<str:token>", public.unsubscribe, name="unsubscribe"),
    path("t/o/<str:token>.gif", public.open_pixel, name="track-open"),
    path("t/c/<str:token>/<str:signature>", public.click, name="track-click"),
]
