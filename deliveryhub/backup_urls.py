"""UI URLs of the operator's backup and restore page (included from deliveryhub/ui_urls.py under /platform/backup/)."""

from django.urls import path

from . import backup_views

urlpatterns = [
    path("", backup_views.backup_page, name="backup"),
    path("export/", backup_views.backup_export, name="backup-export"),
    path("upload/", backup_views.backup_upload, name="backup-upload"),
    path("restore/", backup_views.backup_restore, name="backup-restore"),
]
