"""`manage.py export_config --output FILE`: write a signed, versioned archive of the whole configuration.

What it holds and how it is restored: deliveryhub/backup.py and docs/operations.md ("Backup and restore").
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from deliveryhub import audit, backup


class Command(BaseCommand):
    help = "Export the configuration (tenants, members, domains, DKIM keys, pools, rules, …) to a signed archive."

    def add_arguments(self, parser):
        parser.add_argument("--output", required=True, help="The archive to write (a .zip file).")

    def handle(self, *args, output, **options):
        target = Path(output)
        if not target.parent.is_dir():
            raise CommandError(f"{target.parent} is not a directory.")
        with audit.audit_context(principal=None):
            document = backup.write_archive(target)
        rows = sum(len(section) for section in document["sections"].values())
        keys = ", ".join(document["data_key_ids"]) or "none"
        self.stdout.write(self.style.SUCCESS(f"Wrote {target}: {rows} rows in {len(document['sections'])} sections; "
                                             f"secrets encrypted with data key(s) {keys}."))  # fmt: skip
