"""`manage.py verify_domains [name ...]`: check sending domains' DNS records now and print the outcome."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from deliveryhub.audit import audit_context
from domains.models import SendingDomain, normalise_domain_name
from domains.services import verify_domain


class Command(BaseCommand):
    help = "Verify the DNS records of sending domains (all, or those named) and print each record's status."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="Domain names (default: every domain).")

    def handle(self, *args, names=(), **options):
        domains = SendingDomain.objects.select_related("tenant").order_by("name", "tenant__slug")
        if names:
            try:
                wanted = [normalise_domain_name(name) for name in names]
            except ValidationError as exc:
                raise CommandError(" ".join(exc.message_dict["name"])) from None
            domains = domains.filter(name__in=wanted)
            if not domains:
                raise CommandError(f"No sending domain named {', '.join(names)}.")
        with audit_context(principal=None):
            for domain in domains:
                checks = verify_domain(domain)
                domain.refresh_from_db()
                self.stdout.write(f"{domain.name} ({domain.tenant.slug}): {domain.status}")
                for check in checks:
                    label = f"{check.get_kind_display()} {check.subject}".strip()
                    self.stdout.write(f"  {check.status:8} {label}: {check.explanation}")
