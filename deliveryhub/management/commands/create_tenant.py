"""`manage.py create_tenant <slug> --name "…"`: create a tenant as the system actor (audited)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from deliveryhub import audit, services
from deliveryhub.models import Tenant


def validation_message(exc):
    """A ValidationError as one readable line: "field: message; other: message"."""
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def tenant_by_slug(slug):
    """The tenant with this slug, or a CommandError naming the known ones."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        known = ", ".join(Tenant.objects.order_by("slug").values_list("slug", flat=True)[:20]) or "none yet"
        raise CommandError(f"Unknown tenant {slug!r} (known tenants: {known}).")
    return tenant


class Command(BaseCommand):
    help = "Create a tenant."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Short unique id used in URLs and commands, e.g. acme.")
        parser.add_argument("--name", required=True, help="Display name, e.g. 'Acme Corp'.")
        parser.add_argument("--time-zone", default="UTC", help="Tenant time zone (default UTC).")

    def handle(self, *args, slug, name, time_zone, **options):
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"A tenant with slug {slug!r} already exists.")
        try:
            with audit.audit_context(principal=None):
                tenant = services.create_tenant(slug, name.strip(), time_zone=time_zone)
        except ValidationError as exc:
            raise CommandError(f"Cannot create tenant {slug!r}: {validation_message(exc)}") from None
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug} ({tenant.name}), id {tenant.pk}."))
