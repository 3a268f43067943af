"""UI URLs of the reports app (under /reports/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="reports"),
    path("compliance/", views.compliance_report, name="compliance-report"),
    path("data-requests/", views.data_request_list, name="data-request-list"),
    path("data-requests/<uuid:uuid>/", views.data_request_detail, name="data-request-detail"),
    path("data-requests/<uuid:uuid>/status/", views.data_request_status, name="data-request-status"),
    path("data-requests/<uuid:uuid>/download/", views.data_request_download, name="data-request-download"),
    path("retention/", views.retention, name="retention"),
    path("retention/set/", views.retention_set, name="retention-set"),
    path("retention/purge/", views.retention_purge, name="retention-purge"),
    path("verify/", views.verify, name="verify-signature"),
    path("verify/certificate.pem", views.certificate, name="signing-certificate"),
]
