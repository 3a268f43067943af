"""Configuration backup of the queues app: routes (relay passwords still encrypted), suppression lists, bounce
rules and SMTP submission logins (their password digests: valid where DELIVERYHUB_API_KEY_PEPPER is the same).
Messages are never part of a backup: a restore sends nothing."""

from deliveryhub import backup

from .models import BounceRule, Route, SmtpCredential, Suppression

backup.register(backup.Section(
    "queues.routes", Route, order=60, key=None,
    fields=("tenant", "pattern", "host", "port", "username", "tls_required", "priority", "enabled"),
    refs={"tenant": "core.tenants"}, secrets=("password",),
))  # fmt: skip
backup.register(backup.Section("queues.suppressions", Suppression, order=61, key=("tenant", "address"),
                               fields=("reason", "source"), refs={"tenant": "core.tenants"}, bulk=True))  # fmt: skip
backup.register(backup.Section(
    "queues.bounce_rules", BounceRule, order=62, key=None,
    fields=("tenant", "priority", "code", "enhanced", "text", "category", "action", "enabled", "description"),
    refs={"tenant": "core.tenants"},
))  # fmt: skip
backup.register(backup.Section(
    "queues.smtp_credentials", SmtpCredential, order=63, key=("username",),
    fields=("tenant", "password_digest", "description", "is_active"), refs={"tenant": "core.tenants"},
))  # fmt: skip
