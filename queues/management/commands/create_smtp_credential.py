"""
`manage.py create_smtp_credential --tenant <slug> --name <user name> [--description …] [--allowed-from-domain D …]
[--allowed-network CIDR …]`: an SMTP submission login. The password is printed ALONE on the LAST line (scripts:
`… | tail -n1`); it is shown once and stored only as a digest.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from deliveryhub import audit
from deliveryhub.management.commands.create_tenant import tenant_by_slug, validation_message

from ...services import create_smtp_credential


class Command(BaseCommand):
    help = "Create an SMTP submission login for a tenant; prints the password on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Slug of the tenant the login sends for.")
        parser.add_argument("--name", required=True, help="The user name (unique across the platform).")
        parser.add_argument("--description", default="")
        parser.add_argument("--allowed-from-domain", action="append", default=[], metavar="DOMAIN",
                            help="Allow only this From domain (repeatable); default any of the tenant's.")  # fmt: skip
        parser.add_argument("--allowed-network", action="append", default=[], metavar="CIDR",
                            help="Accept logins only from this network (repeatable); default anywhere.")  # fmt: skip

    def handle(self, *args, tenant, name, description, allowed_from_domain, allowed_network, **options):
        tenant_obj = tenant_by_slug(tenant)
        try:
            with audit.audit_context(principal=None, tenant_id=tenant_obj.pk):
                credential, password = create_smtp_credential(
                    tenant_obj, name, description=description, allowed_from_domains=allowed_from_domain,
                    allowed_networks=allowed_network,
                )  # fmt: skip
        except ValidationError as exc:
            raise CommandError(f"Cannot create the SMTP credential: {validation_message(exc)}") from None
        self.stdout.write(f"Created SMTP login {credential.username!r} for {tenant_obj.slug}. Shown once, store it:")
        self.stdout.write(password)
