"""Enumerations of the project-wide core: roles, API key scopes, job states, audit actions."""

from django.db import models


class Role(models.TextChoices):
    """A member's role in a tenant (also the role an API key acts with)."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    COMPLIANCE = "compliance", "Compliance"
    VIEWER = "viewer", "Viewer"


# Roles that manage infrastructure and must have a verified second factor before changing configuration.
OTP_REQUIRED_ROLES = frozenset({Role.OWNER, Role.ADMIN})

ROLE_BADGES = {
    Role.OWNER: "danger",
    Role.ADMIN: "warning",
    Role.MARKETER: "info",
    Role.COMPLIANCE: "secondary",
    Role.VIEWER: "light",
}


class ApiKeyScope(models.TextChoices):
    """What an API key may do: everything its role allows, or a narrower scope."""

    ROLE = "role", "Role"
    SEND = "send", "Send only"
    READ = "read", "Read only"


class Area(models.TextChoices):
    """A permission area: every model and verb belongs to one."""

    INFRASTRUCTURE = "infrastructure", "Infrastructure"  # domains, DKIM, pools, routes, throttles
    SENDING = "sending", "Sending"  # messages, suppressions
    CAMPAIGNS = "campaigns", "Campaigns"  # campaigns, recipient lists, templates
    ACCESS = "access", "Access"  # members, API keys, SMTP credentials
    AUDIT = "audit", "Audit and reports"  # the audit log and exports
    PRIVACY = "privacy", "Privacy"  # data-subject requests, retention policies, purges: owners and compliance only
    PLATFORM = "platform", "Platform"  # tenants, nodes, IP addresses, shared pools: superusers only


class Action(models.TextChoices):
    VIEW = "view", "View"
    ADD = "add", "Add"
    CHANGE = "change", "Change"
    DELETE = "delete", "Delete"
    EXPORT = "export", "Export"


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"  # an expected failure, explained in `error`
    ERRORED = "errored", "Errored"  # an unexpected exception, traceback in `error`


JOB_STATUS_BADGES = {
    JobStatus.PENDING: "secondary",
    JobStatus.RUNNING: "info",
    JobStatus.COMPLETED: "success",
    JobStatus.FAILED: "warning",
    JobStatus.ERRORED: "danger",
}


class ActorType(models.TextChoices):
    USER = "user", "User"
    API_KEY = "apikey", "API key"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Anonymous"
