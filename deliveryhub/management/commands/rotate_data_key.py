"""
`manage.py rotate_data_key`: re-encrypt every secret stored with `EncryptedTextField` with the newest data key.

Procedure (docs/operations.md, "Rotating the data key"): set DELIVERYHUB_DATA_KEY="new,old", restart,
run this command, check with `--check`, then drop the old key. `--check` only counts rows not yet
encrypted with the newest key and exits non-zero if there are any.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from deliveryhub import audit
from deliveryhub.crypto import InvalidToken, encrypted_fields, fernet

CHUNK = 500  # rows read and rewritten per query


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the first (newest) key of DELIVERYHUB_DATA_KEY."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Only report rows not on the newest key.")

    def handle(self, *args, check=False, **options):
        configured = [key for key in settings.DATA_KEY.split(",") if key.strip()]
        newest, every = fernet(configured[:1]), fernet(configured)
        stale_total = rotated_total = 0
        with audit.audit_context(principal=None), transaction.atomic():
            for model, field in encrypted_fields():
                table, column, pk = model._meta.db_table, field.column, model._meta.pk.column
                q = connection.ops.quote_name
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT {q(pk)}, {q(column)} FROM {q(table)} WHERE {q(column)} <> ''")
                    rows = cursor.fetchall()
                stale, updates = 0, []
                for row_pk, token in rows:
                    try:
                        newest.decrypt(token.encode())
                        continue
                    except InvalidToken:
                        stale += 1
                    try:
                        updates.append((every.rotate(token.encode()).decode(), row_pk))
                    except InvalidToken:
                        raise CommandError(
                            f"{model._meta.label}.{field.name} row {row_pk} cannot be decrypted with any configured "
                            "key: add the key it was written with to DELIVERYHUB_DATA_KEY (after the new one)."
                        ) from None
                stale_total += stale
                if check:
                    self.stdout.write(
                        f"{model._meta.label}.{field.name}: {len(rows)} rows, {stale} not on the newest key"
                    )
                    continue
                with connection.cursor() as cursor:
                    for start in range(0, len(updates), CHUNK):
                        cursor.executemany(
                            f"UPDATE {q(table)} SET {q(column)} = %s WHERE {q(pk)} = %s", updates[start : start + CHUNK]
                        )
                rotated_total += len(updates)
                self.stdout.write(f"{model._meta.label}.{field.name}: {len(updates)} of {len(rows)} rows re-encrypted")
            if not check and rotated_total:
                audit.record(
                    "crypto.rotate_data_key",
                    object_type="deliveryhub.datakey",
                    message=f"{rotated_total} secrets re-encrypted with the newest data key.",
                )
        if check and stale_total:
            raise CommandError(f"{stale_total} secrets are not yet encrypted with the newest key: run rotate_data_key.")
        self.stdout.write(self.style.SUCCESS("Done."))
