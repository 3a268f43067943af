"""`manage.py purge_retention [--dry-run] [--tenant SLUG]`: run the retention purge now and print what it did."""

from django.core.management.base import BaseCommand, CommandError

from deliveryhub import audit
from deliveryhub.models import Tenant
from reports import services


class Command(BaseCommand):
    help = "Delete data past its retention period now (--dry-run: only count what would go)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count only; delete nothing.")
        parser.add_argument("--tenant", help="Only this tenant's data (slug).")

    def handle(self, *args, dry_run=False, tenant=None, **options):
        scope = None
        if tenant:
            scope = Tenant.objects.filter(slug=tenant).first()
            if scope is None:
                raise CommandError(f"No tenant {tenant!r}.")
        with audit.audit_context(principal=None):
            run = services.purge(dry_run=dry_run, tenant=scope, triggered_by="manage.py purge_retention")
        verb = "would delete" if dry_run else "deleted"
        for item in run.items.select_related("tenant"):
            who = item.tenant.slug if item.tenant else "(platform)"
            self.stdout.write(f"{who:20} {item.kind:16} older than {item.days:>4} days: {verb} {item.count}")
        self.stdout.write(self.style.SUCCESS(f"{'Dry run' if dry_run else 'Purge'} {run.uuid}: {verb} {run.total}."))
