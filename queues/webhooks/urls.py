"""UI URLs of events, webhooks, feedback reports, SMTP credentials and DMARC reports (mounted with the queues app)."""

from django.urls import path

from . import views

urlpatterns = [
    path("events/", views.EventListView.as_view(), name="event-list"),
    path("webhooks/", views.WebhookListView.as_view(), name="webhook-list"),
    path("webhooks/new/", views.WebhookEditView.as_view(), name="webhook-add"),
    path("webhooks/<int:pk>/", views.WebhookDetailView.as_view(), name="webhook-detail"),
    path("webhooks/<int:pk>/edit/", views.WebhookEditView.as_view(), name="webhook-edit"),
    path("webhooks/<int:pk>/delete/", views.WebhookDeleteView.as_view(), name="webhook-delete"),
    path("webhooks/<int:pk>/test/", views.WebhookTestView.as_view(), name="webhook-test"),
    path("webhooks/<int:pk>/rotate-secret/", views.WebhookRotateView.as_view(), name="webhook-rotate"),
    path("webhooks/<int:pk>/deliveries/<int:delivery_id>/redeliver/", views.WebhookRedeliverView.as_view(),
         name="webhook-redeliver"),  # fmt: skip
    path("feedback-reports/", views.FeedbackReportListView.as_view(), name="feedback-report-list"),
    path("smtp-credentials/", views.SmtpCredentialListView.as_view(), name="smtp-credential-list"),
    path("smtp-credentials/new/", views.SmtpCredentialEditView.as_view(), name="smtp-credential-add"),
    path("smtp-credentials/<int:pk>/edit/", views.SmtpCredentialEditView.as_view(), name="smtp-credential-edit"),
    path("smtp-credentials/<int:pk>/rotate/", views.SmtpCredentialRotateView.as_view(), name="smtp-credential-rotate"),
    path("smtp-credentials/<int:pk>/revoke/", views.SmtpCredentialRevokeView.as_view(), name="smtp-credential-revoke"),
    path("smtp-credentials/<int:pk>/delete/", views.SmtpCredentialDeleteView.as_view(), name="smtp-credential-delete"),
    path("dmarc/", views.DmarcView.as_view(), name="dmarc-reports"),
]
