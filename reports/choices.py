"""Enumerations of the reports app: data-subject request kinds and states, purge run states. Badges beside them."""

from django.db import models


class DataRequestKind(models.TextChoices):
    """What a data subject asked for."""

    ACCESS = "access", "Access (a copy of their data)"
    ERASURE = "erasure", "Erasure (forget them)"


class DataRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


DATA_REQUEST_STATUS_BADGES = {
    DataRequestStatus.PENDING: "secondary",
    DataRequestStatus.RUNNING: "info",
    DataRequestStatus.COMPLETED: "success",
    DataRequestStatus.FAILED: "danger",
}


class PurgeRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


PURGE_RUN_STATUS_BADGES = {
    PurgeRunStatus.RUNNING: "info",
    PurgeRunStatus.COMPLETED: "success",
    PurgeRunStatus.FAILED: "danger",
}


class ReportFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    CSV = "csv", "CSV"
