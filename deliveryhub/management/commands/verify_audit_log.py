"""`manage.py verify_audit_log`: walk the audit hash chain and fail (exit 1) at the first tampered entry."""

from django.core.management.base import BaseCommand, CommandError

from deliveryhub.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the audit log's hash chain: exit 0 when intact, 1 naming the first edited, removed or moved entry."

    def handle(self, *args, **options):
        report = verify_chain()
        if not report.ok:
            raise CommandError(str(report), returncode=1)
        self.stdout.write(self.style.SUCCESS(str(report)))
