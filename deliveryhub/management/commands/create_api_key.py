"""
`manage.py create_api_key --tenant <slug> --role <role> [--scope role|send|read] [--name …] [--expires-days N]
[--allowed-network CIDR …]`, or `--platform` for an operator key that belongs to no tenant.

The raw key is printed ALONE on the LAST line of output (scripts: `… | tail -n1`); it is shown once
and never stored.
"""

import ipaddress
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from deliveryhub import audit, services
from deliveryhub.choices import ApiKeyScope, Role

from .create_tenant import tenant_by_slug, validation_message


class Command(BaseCommand):
    help = "Create an API key for a tenant (or an operator key with --platform); prints the key on the last line."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--tenant", help="Slug of the tenant the key belongs to.")
        target.add_argument("--platform", action="store_true", help="An operator key for every tenant.")
        parser.add_argument("--role", help=f"Role the key acts with: {', '.join(Role.values)}.")
        parser.add_argument("--scope", default=ApiKeyScope.ROLE, help="role (everything the role allows), send, read.")
        parser.add_argument("--name", default="", help="What the key is for (default: cli).")
        parser.add_argument("--expires-days", type=int, help="The key stops working after N days.")
        parser.add_argument(
            "--allowed-network", action="append", default=[], metavar="CIDR",
            help="Accept the key only from this network (repeatable); default anywhere.",
        )  # fmt: skip

    def handle(self, *args, tenant, platform, role, scope, name, expires_days, allowed_network, **options):
        if platform and (role or scope != ApiKeyScope.ROLE):
            raise CommandError("--platform keys have no role or scope: they act as a platform operator.")
        if not platform:
            if role is None:
                raise CommandError(f"--role is required with --tenant: one of {', '.join(Role.values)}.")
            if role not in Role.values:
                raise CommandError(f"Unknown role {role!r}: use one of {', '.join(Role.values)}.")
            if scope not in ApiKeyScope.values:
                raise CommandError(f"Unknown scope {scope!r}: use one of {', '.join(ApiKeyScope.values)}.")
        if expires_days is not None and expires_days <= 0:
            raise CommandError("--expires-days must be a positive number of days.")
        for net in allowed_network:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise CommandError(f"--allowed-network {net!r} is not an IP network (CIDR, e.g. 10.0.0.0/8).") from None
        tenant_obj = None if platform else tenant_by_slug(tenant)
        expires = timezone.now() + timedelta(days=expires_days) if expires_days else None
        try:
            with audit.audit_context(principal=None):
                key, raw = services.create_api_key(
                    tenant=tenant_obj,
                    name=name.strip() or "cli",
                    role=role or Role.OWNER,
                    scope=scope,
                    expires=expires,
                    allowed_networks=allowed_network,
                )
        except ValidationError as exc:
            raise CommandError(f"Cannot create the API key: {validation_message(exc)}") from None
        owner = "platform operator key" if platform else f"{key.role} key ({key.scope}) for {tenant_obj.slug}"
        until = f", expires {key.expires:%Y-%m-%d %H:%M} UTC" if key.expires else ""
        self.stdout.write(f"Created {owner} {key.name!r}, prefix {key.prefix}{until}. Shown once; store it now:")
        self.stdout.write(raw)
