"""UI URLs of the audit exports (included from deliveryhub/ui_urls.py)."""

from django.urls import path

from . import export_views

urlpatterns = [
    path("audit/export/", export_views.audit_export, name="audit-export"),
]
