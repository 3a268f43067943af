"""`manage.py create_user <email> --tenant <slug> --role <role> [--password …] [--superuser]`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from deliveryhub import audit, services
from deliveryhub.choices import Role

from .create_tenant import tenant_by_slug, validation_message


class Command(BaseCommand):
    help = "Create a user (username = email) with a role in a tenant, or a platform superuser."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--tenant", help="Slug of the tenant the user joins (required unless --superuser).")
        parser.add_argument("--role", help=f"Role in the tenant: {', '.join(Role.values)}.")
        parser.add_argument("--password", help="Initial password (validated). Without it the user cannot sign in.")
        parser.add_argument("--superuser", action="store_true", help="A platform operator (all tenants).")

    def handle(self, *args, email, tenant, role, password, superuser, **options):
        email = email.strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not a valid email address.") from None
        if tenant is None and not superuser:
            raise CommandError("--tenant is required (or --superuser for a platform operator).")
        if tenant is not None and role is None:
            raise CommandError(f"--role is required with --tenant: one of {', '.join(Role.values)}.")
        if role is not None and role not in Role.values:
            raise CommandError(f"Unknown role {role!r}: use one of {', '.join(Role.values)}.")
        tenant_obj = tenant_by_slug(tenant) if tenant is not None else None
        try:
            with audit.audit_context(principal=None), transaction.atomic():
                user = services.create_user(
                    email, tenant=tenant_obj, role=role, password=password or None, is_superuser=superuser
                )
        except ValidationError as exc:
            raise CommandError(f"Cannot create user {email}: {validation_message(exc)}") from None
        where = f" as {role} in {tenant_obj.slug}" if tenant_obj else ""
        kind = "superuser" if superuser else "user"
        self.stdout.write(self.style.SUCCESS(f"Created {kind} {user.email}{where}."))
        if not password:
            self.stdout.write("No password set: the user cannot sign in until one is set (manage.py changepassword).")
