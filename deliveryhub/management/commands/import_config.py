"""`manage.py import_config FILE [--dry-run]`: restore a configuration archive written by `export_config`.

The signature is checked first. `--dry-run` prints what would change against this install and changes nothing.
A restore sends nothing: messages are never in an archive, and scheduled work that could send (campaigns) comes
back paused (`--scheduled paused`, the default) or is left out (`--scheduled skip`).
"""

import json

from django.core.management.base import BaseCommand, CommandError

from deliveryhub import audit, backup


class Command(BaseCommand):
    help = "Restore the configuration from a signed archive (--dry-run: print the differences only)."

    def add_arguments(self, parser):
        parser.add_argument("archive", help="An archive written by export_config.")
        parser.add_argument("--dry-run", action="store_true", help="Print the differences; change nothing.")
        parser.add_argument("--scheduled", choices=backup.SCHEDULED_CHOICES, default="paused",
                            help="Scheduled campaigns come back paused (default) or not at all.")  # fmt: skip
        parser.add_argument("--trust-signer", default="", metavar="FINGERPRINT",
                            help="Accept an archive signed by this certificate (SHA-256 fingerprint).")  # fmt: skip

    def handle(self, *args, archive, dry_run=False, scheduled="paused", trust_signer="", **options):
        try:
            document, verification = backup.read_archive(archive, trust_signer=trust_signer)
        except OSError as exc:
            raise CommandError(f"Cannot read {archive}: {exc}") from None
        except backup.RestoreError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Archive of {document['exported_at']}, signed by {verification.signer} "
                          f"({verification.fingerprint[:16]}…).")  # fmt: skip
        if dry_run:
            differences = backup.diff(document)
            if not differences:
                self.stdout.write(self.style.SUCCESS("No differences: this install holds exactly this configuration."))
                return
            for name, parts in differences.items():
                self.stdout.write(f"{name}: {len(parts['added'])} to add, {len(parts['changed'])} to change, "
                                  f"{len(parts['only_here'])} only here (kept)")  # fmt: skip
                for key in parts["added"]:
                    self.stdout.write(f"  + {json.dumps(key)}")
                for key, fields in parts["changed"]:
                    changes = ", ".join(f"{f}: {json.dumps(a)} -> {json.dumps(b)}" for f, (a, b) in fields.items())
                    self.stdout.write(f"  ~ {json.dumps(key)} {changes}"[:2000])
                for key in parts["only_here"]:
                    self.stdout.write(f"  = {json.dumps(key)} (not in the archive; an import keeps it)")
            return
        try:
            with audit.audit_context(principal=None):
                summary = backup.import_document(document, options=backup.ImportOptions(scheduled=scheduled))
        except backup.RestoreError as exc:
            raise CommandError("Nothing was changed: " + "; ".join(exc.messages)) from None
        for name, counts in summary.items():
            if counts["created"] or counts["updated"] or counts["skipped"]:
                self.stdout.write(f"{name}: {counts['created']} created, {counts['updated']} updated, "
                                  f"{counts['unchanged']} unchanged, {counts['skipped']} skipped")  # fmt: skip
        self.stdout.write(self.style.SUCCESS("Configuration restored. Members sign in after a password reset."))
