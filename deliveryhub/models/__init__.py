"""
Core models: tenants and memberships, API keys, the audit log, background jobs and the abstract bases every app
builds on (`core`); second-factor devices with their secrets encrypted at rest (`otp`).
"""

from .core import (
    ApiKey,
    AuditChainHead,
    AuditEntry,
    ChangeLoggedModel,
    Job,
    Lease,
    LoginFailure,
    Membership,
    PanelURLs,
    PersonalDataMixin,
    SigningKey,
    Tenant,
    TenantModel,
    log_deletion,
    snapshot_value,
)
from .otp import EncryptedTOTPDevice, RecoveryCode, RecoveryCodeDevice

__all__ = [
    "ApiKey",
    "AuditChainHead",
    "AuditEntry",
    "ChangeLoggedModel",
    "EncryptedTOTPDevice",
    "Job",
    "Lease",
    "LoginFailure",
    "Membership",
    "PanelURLs",
    "PersonalDataMixin",
    "RecoveryCode",
    "RecoveryCodeDevice",
    "SigningKey",
    "Tenant",
    "TenantModel",
    "log_deletion",
    "snapshot_value",
]
