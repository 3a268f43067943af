"""
CSV imports, as background jobs: contacts into a list, or addresses into the suppression list.

The file: a header row, UTF-8 with or without a BOM, separated by `,`, `;` or tab (whichever the header uses
most), quoted as spreadsheets do. The email column is required; the others become the contact's name
(a column called `name`, or mapped to it) and custom fields, unless the mapping skips them (`""`).

Modes: *add* creates new contacts and subscribes them (contacts already there keep their data, and someone who
unsubscribed from the list is never subscribed again by an import); *update* also overwrites names and custom
fields of existing contacts; *unsubscribe* marks the addresses unsubscribed from the list (unknown addresses
are created unsubscribed, so that a later import cannot subscribe them).

Bad rows (not an address, a value over the limits, a wrong column count, an address seen earlier in the file)
are skipped and listed in the validation report (a CSV: row, value, reason). Addresses on the suppression list
are imported but counted as suppressed; campaigns never send to them.

Rows are written IMPORT_CHUNK_ROWS at a time, each chunk in one transaction, set-based: the chunk goes into a
temporary table (PostgreSQL `COPY`, SQLite `executemany`), then a few `INSERT … SELECT … ON CONFLICT` statements
write contacts and subscriptions. After each commit the import's counters say exactly what was written; a
cancel takes effect between chunks, a failure leaves the chunk it was writing unwritten.
"""

import csv
import io
import json
import logging
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from deliveryhub import audit
from deliveryhub.exceptions import Conflict
from deliveryhub.jobs import JobFailed, JobRunner

from ..choices import ImportKind, ImportMode, ImportState, SubscriptionStatus, SuppressionReason
from ..constants import ATTRIBUTE_VALUE_MAX, ATTRIBUTES_MAX, IMPORT_CHUNK_ROWS, IMPORT_DIR, IMPORT_MAX_BYTES
from ..models import Contact, ContactImport, Subscription, Suppression
from .contacts import check_attribute_name, check_name, has_control_characters, normalise_email

logger = logging.getLogger(__name__)

DELIMITERS = (",", ";", "\t")
NAME_TARGET = "name"
STAGE = "dh_import_stage"  # temporary tables of one chunk
STAGE_IDS = "dh_import_ids"
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # one encoder for every row
csv.field_size_limit(1024 * 1024)  # one cell of up to 1 MiB (over-long values are then reported, not fatal)


class ImportCancelled(Exception):
    """Raised between chunks when someone cancelled the import."""


# ---------------------------------------------------------------------------------------------------------------------
# Starting and cancelling
# ---------------------------------------------------------------------------------------------------------------------


def _store_upload(upload):
    """Write an uploaded file under MEDIA_ROOT/imports/ and return (relative path, size)."""
    size = getattr(upload, "size", None)
    if size is not None and size > IMPORT_MAX_BYTES:
        raise ValidationError({"file": f"The file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MiB."})
    relative = f"{IMPORT_DIR}/{uuid.uuid4().hex}.csv"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with target.open("wb") as out:
        for chunk in upload.chunks():
            written += len(chunk)
            if written > IMPORT_MAX_BYTES:
                out.close()
                target.unlink(missing_ok=True)
                raise ValidationError({"file": f"The file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MiB."})
            out.write(chunk)
    if not written:
        target.unlink(missing_ok=True)
        raise ValidationError({"file": "The file is empty."})
    return relative, written


def read_header(path):
    """(delimiter, column names) of a stored CSV file; ValidationError when it has no usable header."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        try:
            first = handle.readline()
        except UnicodeDecodeError:
            raise ValidationError({"file": "The file is not UTF-8 text: save it as CSV UTF-8."}) from None
    if not first.strip():
        raise ValidationError({"file": "The first line must name the columns (a header row)."})
    delimiter = max(DELIMITERS, key=first.count)
    header = next(csv.reader([first], delimiter=delimiter))
    return delimiter, [name.strip() for name in header]


def _plan_columns(header, email_column, mapping, kind):
    """(email index, [(index, target)]) from the header and the mapping; ValidationError names what is wrong."""
    lowered = [name.lower() for name in header]
    wanted = (email_column or "email").strip().lower()
    if wanted not in lowered:
        raise ValidationError(
            {"email_column": f"No column named {email_column!r}: the file's columns are {', '.join(header)}."}
        )
    email_index = lowered.index(wanted)
    if not isinstance(mapping, dict):
        raise ValidationError({"mapping": 'The mapping is a JSON object of column → name, attribute or "".'})
    unknown = [column for column in mapping if column.lower() not in lowered]
    if unknown:
        raise ValidationError({"mapping": f"No such column in the file: {', '.join(unknown)}."})
    mapped = {column.lower(): target for column, target in mapping.items()}
    targets = []
    if kind == ImportKind.CONTACTS:
        for index, column in enumerate(header):
            if index == email_index:
                continue
            target = mapped.get(column.lower(), NAME_TARGET if column.lower() == NAME_TARGET else column)
            if not isinstance(target, str):
                raise ValidationError({"mapping": f"The target of {column!r} must be a string."})
            if target == "":
                continue
            if target != NAME_TARGET:
                check_attribute_name(target, "mapping")
            targets.append((index, target))
        if len({t for _, t in targets if t != NAME_TARGET}) > ATTRIBUTES_MAX:
            raise ValidationError({"mapping": f"At most {ATTRIBUTES_MAX} custom fields: skip some columns."})
    return email_index, targets


@transaction.atomic
def start_import(
    tenant,
    upload,
    *,
    contact_list=None,
    kind=ImportKind.CONTACTS,
    mode=ImportMode.ADD,
    email_column="email",
    mapping=None,
    acting_user=None,
):
    """Store the upload, check its header against the mapping, and queue the import job; returns the import.

    Everything the header can tell is checked here (a field error, nothing queued); rows are checked by the job.
    """
    with audit.acting_as(acting_user):
        if kind == ImportKind.CONTACTS and contact_list is None:
            raise ValidationError({"list": "A contact import needs a list."})
        if mode not in ImportMode.values:
            raise ValidationError({"mode": f"Use one of {', '.join(ImportMode.values)}."})
        mapping = mapping or {}
        relative, size = _store_upload(upload)
        path = Path(settings.MEDIA_ROOT) / relative
        try:
            _, header = read_header(path)
            _plan_columns(header, email_column, mapping, kind)
        except ValidationError:
            path.unlink(missing_ok=True)
            raise
        principal = audit.current_context().principal
        user = getattr(principal, "user", None)
        api_key = getattr(principal, "api_key", None)
        imp = ContactImport.objects.create(
            tenant=tenant,
            kind=kind,
            contact_list=contact_list,
            mode=mode,
            email_column=email_column,
            mapping=mapping,
            file_name=(getattr(upload, "name", "") or "upload.csv")[:255],
            path=relative,
            size=size,
            created_by=user,
        )
        imp.job = ContactImportRunner.enqueue(
            tenant=tenant, user=user, api_key=api_key, object=imp, params={"import": str(imp.uuid)}
        )
        imp.save(update_fields=["job"])
        target = contact_list if contact_list is not None else tenant
        audit.record(
            "contact_import.start",
            obj=target,
            tenant=tenant,
            postchange={"import": str(imp.uuid), "file": imp.file_name, "mode": mode, "kind": kind, "bytes": size},
        )
        return imp


@transaction.atomic
def cancel_import(imp, *, acting_user=None):
    """Ask a running or pending import to stop after the chunk it is writing (audited); a finished one is left."""
    with audit.acting_as(acting_user):
        if imp.is_finished:
            raise Conflict(f"The import has finished ({imp.state}): there is nothing to cancel.")
        ContactImport.objects.filter(pk=imp.pk, cancel_requested__isnull=True).update(cancel_requested=timezone.now())
        audit.record("contact_import.cancel", obj=imp, tenant=imp.tenant_id)
        imp.refresh_from_db()
        return imp


# ---------------------------------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------------------------------


class ContactImportRunner(JobRunner):
    """Reads an import's CSV file and writes it chunk by chunk (see the module docstring)."""

    name = "CSV import"

    def run(self, job):
        imp = ContactImport.objects.select_related("contact_list").get(uuid=job.params["import"])
        if imp.cancel_requested is not None:
            _finish(imp, ImportState.CANCELLED)
            return
        try:
            run_import(imp, progress=lambda percent: self.progress(job, percent))
        except ImportCancelled:
            _finish(imp, ImportState.CANCELLED)
        except JobFailed as exc:
            _finish(imp, ImportState.FAILED, str(exc))
            raise
        except Exception as exc:
            _finish(imp, ImportState.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        else:
            _finish(imp, ImportState.COMPLETED)
        finally:
            job.result = {
                **imp.counts(),
                "state": imp.state,
                "import": str(imp.uuid),
                "report_url": f"/api/v1/contact-imports/{imp.uuid}/report/",
            }
            job.save(update_fields=["result"])


def _finish(imp, state, error=""):
    imp.state, imp.error, imp.finished = state, error[:2000], timezone.now()
    imp.save(update_fields=["state", "error", "finished"])
    audit.record(f"contact_import.{state}", obj=imp, tenant=imp.tenant_id, postchange=imp.counts(), message=error[:500])


def _count_lines(path):
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def run_import(imp, progress=None):
    """Read the file and write it in chunks, updating the import's counters after every committed chunk."""
    path = Path(settings.MEDIA_ROOT) / imp.path
    if not path.is_file():
        raise JobFailed("The uploaded file is gone: upload it again.")
    try:
        delimiter, header = read_header(path)
        email_index, targets = _plan_columns(header, imp.email_column, imp.mapping, imp.kind)
    except ValidationError as exc:
        raise JobFailed("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
    now = timezone.now()
    imp.state, imp.started, imp.rows_total = ImportState.RUNNING, now, max(_count_lines(path) - 1, 0)
    imp.report_path = f"{IMPORT_DIR}/{imp.uuid.hex}-report.csv"
    imp.save(update_fields=["state", "started", "rows_total", "report_path"])
    write = _write_contacts if imp.kind == ImportKind.CONTACTS else _write_suppressions
    columns = len(header)
    seen = {}
    chunk = []
    report_file = (Path(settings.MEDIA_ROOT) / imp.report_path).open("w", encoding="utf-8", newline="")
    report = csv.writer(report_file)
    report.writerow(["row", "value", "reason"])
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            next(reader)
            row_number = 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except UnicodeDecodeError:
                    raise JobFailed(f"Row {row_number + 1} is not UTF-8 text: save the file as CSV UTF-8.") from None
                except csv.Error as exc:
                    raise JobFailed(f"Row {row_number + 1} cannot be read as CSV: {exc}.") from None
                row_number += 1
                if not row or not any(cell.strip() for cell in row):
                    continue  # blank line
                imp.rows_read += 1
                parsed = _parse_row(row, columns, email_index, targets, seen, row_number)
                if isinstance(parsed, str):
                    imp.invalid += 1
                    value = row[email_index] if email_index < len(row) else ""
                    report.writerow([row_number, value[:200], parsed])
                    continue
                chunk.append(parsed)
                if len(chunk) >= IMPORT_CHUNK_ROWS:
                    _write_chunk(imp, write, chunk, progress)
                    chunk = []
            if chunk:
                _write_chunk(imp, write, chunk, progress)
            else:
                _save_counters(imp)
    finally:
        report_file.close()


def _parse_row(row, columns, email_index, targets, seen, row_number):
    """(email, domain, name, attributes JSON) of a good row, or the reason it is skipped."""
    if len(row) != columns:
        return f"Has {len(row)} columns; the header has {columns}."
    raw = row[email_index].strip()
    try:
        email, domain = normalise_email(raw)
    except ValidationError as exc:
        return next(iter(exc.message_dict.values()))[0] if raw else "No email address."
    first = seen.get(email)
    if first is not None:
        return f"Duplicate of row {first}."
    name, attributes = "", {}
    for index, target in targets:
        value = row[index].strip()
        if target == NAME_TARGET:
            try:
                name = check_name(value)
            except ValidationError as exc:
                return next(iter(exc.message_dict.values()))[0]
        elif value:
            if len(value) > ATTRIBUTE_VALUE_MAX:
                return f"The value of {target} is longer than {ATTRIBUTE_VALUE_MAX} characters."
            if has_control_characters(value):
                return f"The value of {target} contains control characters."
            attributes[target] = value
    seen[email] = row_number
    return email, domain, name, _to_json(attributes)


def _write_chunk(imp, write, rows, progress):
    latest = ContactImport.objects.filter(pk=imp.pk).values_list("cancel_requested", flat=True).first()
    if latest is not None:
        _save_counters(imp)
        raise ImportCancelled()
    with transaction.atomic():
        created, updated, suppressed = write(imp, rows)
        imp.imported += created
        imp.updated += updated
        imp.suppressed += suppressed
        _save_counters(imp)
    if progress is not None:
        progress(imp.percent)


def _save_counters(imp):
    ContactImport.objects.filter(pk=imp.pk).update(
        rows_read=imp.rows_read,
        imported=imp.imported,
        updated=imp.updated,
        invalid=imp.invalid,
        suppressed=imp.suppressed,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Set-based writes of one chunk
# ---------------------------------------------------------------------------------------------------------------------


def _postgres():
    return connection.vendor == "postgresql"


def _load_stage(cursor, rows):
    """A temporary table of the chunk's rows (email, domain, name, attributes); `_drop_stage` removes it."""
    json_type = "jsonb" if _postgres() else "text"
    cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
    cursor.execute(
        f"CREATE TEMP TABLE {STAGE} (email varchar(320) PRIMARY KEY, domain varchar(255), "
        f"name varchar(200), attributes {json_type})"
    )
    if _postgres():
        with cursor.cursor.copy(f"COPY {STAGE} (email, domain, name, attributes) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        cursor.executemany(f"INSERT INTO {STAGE} VALUES (%s, %s, %s, %s)", rows)


def _drop_stage(cursor):
    cursor.execute(f"DROP TABLE {STAGE}")


def _count(cursor, sql, params):
    cursor.execute(sql, params)
    return cursor.fetchone()[0]


def _write_contacts(imp, rows):
    """Write one chunk of contacts and their subscriptions to the import's list: (created, updated, suppressed)."""
    if _postgres():
        return _write_contacts_postgres(imp, rows)
    contact, subscription, suppression = (m._meta.db_table for m in (Contact, Subscription, Suppression))
    now, tenant_id, list_id = timezone.now(), imp.tenant_id, imp.contact_list_id
    with connection.cursor() as cursor:
        _load_stage(cursor, rows)
        existing = _count(
            cursor,
            f"SELECT count(*) FROM {STAGE} s JOIN {contact} c ON c.tenant_id = %s AND c.email = s.email",
            [tenant_id],
        )
        insert = (
            f"INSERT INTO {contact} (tenant_id, email, domain, name, attributes, created, last_updated) "
            f"SELECT %s, email, domain, name, attributes, %s, %s FROM {STAGE} WHERE true "
        )
        if imp.mode == ImportMode.UPDATE:
            cursor.execute(
                insert
                + _UPSERT.format(contact=contact, merge=f"json_patch({contact}.attributes, excluded.attributes)"),
                [tenant_id, now, now],
            )
        else:
            cursor.execute(insert + "ON CONFLICT (tenant_id, email) DO NOTHING", [tenant_id, now, now])
        created = len(rows) - existing
        cursor.execute(
            f"INSERT INTO {subscription} (contact_id, contact_list_id, status, created, updated) "
            f"SELECT c.id, %s, %s, %s, %s FROM {STAGE} s JOIN {contact} c ON c.tenant_id = %s AND c.email = s.email "
            f"WHERE true " + _subscribe_conflict(imp, subscription),
            [list_id, _status(imp), now, now, tenant_id, *_conflict_params(imp)],
        )
        updated = _updated(imp, existing, created, cursor.rowcount)
        suppressed = _count(
            cursor,
            f"SELECT count(*) FROM {STAGE} s JOIN {suppression} p ON p.tenant_id = %s AND p.address = s.email",
            [tenant_id],
        )
        _drop_stage(cursor)
    return created, updated, suppressed


def _write_contacts_postgres(imp, rows):
    """PostgreSQL: existing contacts are looked up by an array (`= ANY`: probes of the unique (tenant, email) index;
    a join would scan the tenant's whole contact table once per chunk), and the rows to write go in by `COPY` into
    temporary tables, then `INSERT … SELECT … ON CONFLICT … RETURNING` (no literal of 20,000 values to build and
    parse)."""
    contact, subscription, suppression = (m._meta.db_table for m in (Contact, Subscription, Suppression))
    now, tenant_id, list_id = timezone.now(), imp.tenant_id, imp.contact_list_id
    emails = [row[0] for row in rows]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT email, id FROM {contact} WHERE tenant_id = %s AND email = ANY(%s)", [tenant_id, emails])
        ids = dict(cursor.fetchall())
        existing = len(ids)
        writing = rows if imp.mode == ImportMode.UPDATE else [row for row in rows if row[0] not in ids]
        if writing:
            _load_stage(cursor, writing)
            if imp.mode == ImportMode.UPDATE:
                conflict = _UPSERT.format(contact=contact, merge=f"{contact}.attributes || excluded.attributes")
            else:
                conflict = "ON CONFLICT (tenant_id, email) DO NOTHING"
            cursor.execute(
                f"INSERT INTO {contact} (tenant_id, email, domain, name, attributes, created, last_updated) "
                f"SELECT %s, email, domain, name, attributes, %s, %s FROM {STAGE} " + conflict + " RETURNING email, id",
                [tenant_id, now, now],
            )
            ids.update(cursor.fetchall())
            _drop_stage(cursor)
        missing = [email for email in emails if email not in ids]
        if missing:  # created by someone else since the first look
            cursor.execute(
                f"SELECT email, id FROM {contact} WHERE tenant_id = %s AND email = ANY(%s)", [tenant_id, missing]
            )
            ids.update(cursor.fetchall())
            existing += len(missing)
        created = len(rows) - existing
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE_IDS}")
        cursor.execute(f"CREATE TEMP TABLE {STAGE_IDS} (id bigint)")
        with cursor.cursor.copy(f"COPY {STAGE_IDS} (id) FROM STDIN") as copy:
            for email in emails:
                copy.write_row((ids[email],))
        cursor.execute(
            f"INSERT INTO {subscription} (contact_id, contact_list_id, status, created, updated) "
            f"SELECT id, %s, %s, %s, %s FROM {STAGE_IDS} " + _subscribe_conflict(imp, subscription),
            [list_id, _status(imp), now, now, *_conflict_params(imp)],
        )
        updated = _updated(imp, existing, created, cursor.rowcount)
        cursor.execute(f"DROP TABLE {STAGE_IDS}")
        suppressed = _count(
            cursor,
            f"SELECT count(*) FROM {suppression} WHERE tenant_id = %s AND address = ANY(%s)",
            [tenant_id, emails],
        )
    return created, updated, suppressed


# Update mode: a name only when the file has one; custom fields merged (the file's win).
_UPSERT = (
    "ON CONFLICT (tenant_id, email) DO UPDATE SET name = CASE WHEN excluded.name <> '' THEN excluded.name "
    "ELSE {contact}.name END, attributes = {merge}, last_updated = excluded.last_updated"
)


def _status(imp):
    return SubscriptionStatus.UNSUBSCRIBED if imp.mode == ImportMode.UNSUBSCRIBE else SubscriptionStatus.SUBSCRIBED


def _subscribe_conflict(imp, subscription):
    """Add/update never touch an existing subscription (an unsubscribed contact stays so); unsubscribe changes a
    subscribed one."""
    if imp.mode == ImportMode.UNSUBSCRIBE:
        return (
            f"ON CONFLICT (contact_list_id, contact_id) DO UPDATE SET status = excluded.status, "
            f"updated = excluded.updated WHERE {subscription}.status = %s"
        )
    return "ON CONFLICT (contact_list_id, contact_id) DO NOTHING"


def _conflict_params(imp):
    return [SubscriptionStatus.SUBSCRIBED] if imp.mode == ImportMode.UNSUBSCRIBE else []


def _updated(imp, existing, created, subscribed):
    """Existing contacts the chunk touched: changed (update), unsubscribed (unsubscribe), or newly on the list (add)."""
    if imp.mode == ImportMode.ADD:
        return max(subscribed - created, 0)
    return existing


def _write_suppressions(imp, rows):
    """Write one chunk of addresses to the tenant's suppression list: (created, already there, 0)."""
    suppression = Suppression._meta.db_table
    now = timezone.now()
    source = f"CSV import {imp.file_name}"[:500]
    with connection.cursor() as cursor:
        _load_stage(cursor, rows)
        cursor.execute(
            f"INSERT INTO {suppression} (tenant_id, address, reason, source, created, last_updated) "
            f"SELECT %s, email, %s, %s, %s, %s FROM {STAGE} WHERE true ON CONFLICT (tenant_id, address) DO NOTHING",
            [imp.tenant_id, SuppressionReason.IMPORT, source, now, now],
        )
        created = cursor.rowcount
        _drop_stage(cursor)
    return created, len(rows) - created, 0


def report_text(imp):
    """The validation report's CSV text (for the download), or None when there is none."""
    if not imp.report_path:
        return None
    path = Path(settings.MEDIA_ROOT) / imp.report_path
    return path.read_text(encoding="utf-8") if path.is_file() else None


def sample_rows(path, limit=5):
    """The header and the first rows of a stored file (the column mapping form shows them)."""
    delimiter, header = read_header(path)
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(io.StringIO("".join(handle.readline() for _ in range(limit + 1))), delimiter=delimiter)
        next(reader, None)
        return header, [row for row in reader]
