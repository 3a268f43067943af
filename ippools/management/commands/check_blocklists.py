"""`manage.py check_blocklists [ADDRESS ...] [--force]`: check IPs against the DNS blocklists now."""

from django.core.management.base import BaseCommand, CommandError

from deliveryhub.audit import audit_context
from ippools import services
from ippools.choices import IPState
from ippools.models import IPAddress


class Command(BaseCommand):
    help = "Check the given IPs (default: every non-retired IP) against the configured DNS blocklists."

    def add_arguments(self, parser):
        parser.add_argument("addresses", nargs="*")
        parser.add_argument("--force", action="store_true", help="Ignore cached answers.")

    def handle(self, *args, addresses=(), force=False, **options):
        ips = IPAddress.objects.exclude(state=IPState.RETIRED)
        if addresses:
            ips = IPAddress.objects.filter(address__in=addresses)
            missing = set(addresses) - set(ips.values_list("address", flat=True))
            if missing:
                raise CommandError(f"Unknown IP address(es): {', '.join(sorted(missing))}")
        with audit_context(principal=None):
            for ip in ips:
                for check in services.check_blocklists(ip, force=force):
                    self.stdout.write(f"{ip.address:<40} {check.zone:<30} {check.status:<8} {check.meaning}")
