"""`manage.py verify_signature FILE`: check a signed PDF (report, export) or signed archive (backup, access archive).

Exit 0 when the file is unmodified and signed by one of this platform's keys; non-zero otherwise, with the reason.
"""

from django.core.management.base import BaseCommand, CommandError

from deliveryhub import signing


class Command(BaseCommand):
    help = "Verify the signature of a PDF report/export or a signed archive."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, file, **options):
        try:
            result = signing.verify_file(file)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from None
        if not result.ok:
            raise CommandError(result.summary())
        self.stdout.write(self.style.SUCCESS(result.summary()))
