"""
`manage.py rotate_data_key`: re-encrypt every secret stored with `EncryptedTextField`, and every encrypted message
body (`EncryptedBinaryField`), with the newest data key.

Procedure (docs/operations.md, "Rotating the data key"): set DELIVERYHUB_DATA_KEY="new,old", restart,
run this command, check with `--check`, then drop the old key. `--check` only counts rows not yet
encrypted with the newest key and exits non-zero if there are any.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from deliveryhub import audit
from deliveryhub.crypto import EncryptedBinaryField, InvalidToken, encrypted_fields, fernet, rotate_bytes

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
            for model, field in encrypted_fields(EncryptedBinaryField):
                stale, rotated = self.rotate_binary(model, field, check)
                stale_total += stale
                rotated_total += rotated
            if not check and rotated_total:
                audit.record(
                    "crypto.rotate_data_key",
                    object_type="deliveryhub.datakey",
                    message=f"{rotated_total} secrets re-encrypted with the newest data key.",
                )
        if check and stale_total:
            raise CommandError(f"{stale_total} secrets are not yet encrypted with the newest key: run rotate_data_key.")
        self.stdout.write(self.style.SUCCESS("Done."))

    def rotate_binary(self, model, field, check):
        """Re-encrypt one binary field's encrypted rows, CHUNK at a time by primary key; rows in clear stay so."""
        table, column, pk = model._meta.db_table, field.column, model._meta.pk.column
        q = connection.ops.quote_name
        last, stale, rotated = 0, 0, 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {q(pk)}, {q(column)} FROM {q(table)} WHERE {q(pk)} > %s ORDER BY {q(pk)} "
                               f"LIMIT {CHUNK}", [last])  # fmt: skip
                rows = cursor.fetchall()
            if not rows:
                break
            last = rows[-1][0]
            updates = []
            for row_pk, value in rows:
                try:
                    new = rotate_bytes(bytes(value)) if value is not None else None
                except InvalidToken:
                    raise CommandError(
                        f"{model._meta.label}.{field.name} row {row_pk} cannot be decrypted with any configured key: "
                        "add the key it was written with to DELIVERYHUB_DATA_KEY (after the new one)."
                    ) from None
                if new is not None:
                    updates.append((new, row_pk))
            stale += len(updates)
            if not check and updates:
                with connection.cursor() as cursor:
                    cursor.executemany(f"UPDATE {q(table)} SET {q(column)} = %s WHERE {q(pk)} = %s", updates)
                rotated += len(updates)
        label = f"{model._meta.label}.{field.name}"
        self.stdout.write(f"{label}: {stale} encrypted rows not on the newest key" if check else
                          f"{label}: {rotated} encrypted rows re-encrypted")  # fmt: skip
        return stale, rotated
