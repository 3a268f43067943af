"""
Configuration backup and restore: a signed, versioned archive of everything an operator configured, filled by a
registry that every app contributes to from its own `backup.py` (discovered like `jobs.py`).

    from deliveryhub import backup

    backup.register(backup.Section(
        "domains.dkim_keys", DkimKey, order=31,
        key=("domain", "selector"),                 # natural key: how a row is found again in another install
        fields=("algorithm", "key_bits", "public_key", "state", "activated_at"),
        refs={"tenant": "core.tenants", "domain": "domains.sending_domains"},  # foreign keys by natural key
        secrets=("private_key",),                   # EncryptedTextFields: exported still encrypted, with the key id
    ))

The document (`config.json` in the archive) lists each section's rows sorted by natural key, foreign keys as the
target's natural key, datetimes in ISO 8601 UTC, secrets as {"token": <Fernet token>, "data_key_id": <id>}: the
same configuration always gives the same document, `exported_at` aside. A section without a natural key
(`key=None`: rules that are only their content) matches rows by all their fields.

Import (`import_document`) runs in one transaction, section by section: a row found by its natural key is updated
(only when it differs), a missing one is created, nothing is deleted. Every write goes through the model (so the
audit log records each restored object) and `full_clean()`; a bad archive changes nothing. Secrets are stored as
the archive carries them (`crypto.Ciphertext`), so the install needs the data key they were encrypted with:
import refuses, naming the key id, when that key is not configured. Nothing is sent or scheduled by an import:
messages are not part of a backup, and sections declare `on_restore` to pause what could send
(`ImportOptions.scheduled`: "paused" or "skip").

`diff()` compares an archive's document with the live configuration (the dry run).
"""

import io
import json
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import Q, TextField
from django.db.models.expressions import RawSQL
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.module_loading import autodiscover_modules

from . import audit, signing
from .constants import QUEUE_LOW
from .crypto import Ciphertext, configured_keys, key_id, key_id_of_token
from .jobs import JobFailed, JobRunner
from .models import Membership, SigningKey, Tenant

User = get_user_model()

FORMAT = "deliveryhub-config"
VERSION = 1
SCHEDULED_CHOICES = ("paused", "skip")  # what a restore does with scheduled work that could send

__all__ = ["FORMAT", "VERSION", "ImportOptions", "Section", "diff", "export_document", "import_document", "register"]


@dataclass
class ImportOptions:
    """How an import treats what could send: scheduled campaigns come back paused (default) or not at all."""

    scheduled: str = "paused"


@dataclass
class Section:
    """One model's part of the backup (see the module docstring)."""

    name: str
    model: type
    key: tuple | None
    fields: tuple
    order: int = 100
    refs: dict = field(default_factory=dict)  # field name -> section name of the target
    secrets: tuple = ()
    queryset: object = None  # callable returning the rows to export; default: every row
    on_restore: object = None  # callable(obj, row, options) -> False to skip the row; may change obj
    bulk: bool = False  # many small rows (suppressions): created and updated in bulk, one audit entry

    def rows(self):
        queryset = self.queryset() if self.queryset is not None else self.model._default_manager.all()
        return queryset.select_related(*self.refs)

    @property
    def identity(self):
        """The fields a row is matched by: its natural key, or every exported field."""
        return self.key if self.key is not None else self.fields

    @property
    def all_fields(self):
        return tuple(dict.fromkeys([*(self.key or ()), *self.fields, *self.secrets]))


_sections: dict[str, Section] = {}


def register(section):
    _sections[section.name] = section
    return section


def sections():
    autodiscover_modules("backup")
    return sorted(_sections.values(), key=lambda s: (s.order, s.name))


def section(name):
    autodiscover_modules("backup")
    return _sections[name]


# ---------------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------------


def _plain(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def natural_key(section_, obj):
    """The natural key of `obj` in `section_` as a JSON list (references nested as their own natural keys)."""
    return [_field_value(section_, obj, name) for name in section_.identity]


def _field_value(section_, obj, name):
    if name in section_.refs:
        target = getattr(obj, name)
        return None if target is None else natural_key(section(section_.refs[name]), target)
    return _plain(getattr(obj, name))


def _raw_secret(obj, name):
    """The stored Fernet token of an encrypted field, read as plain text (never decrypted here)."""
    model = type(obj)
    quote = connection.ops.quote_name
    column = RawSQL(f"{quote(model._meta.db_table)}.{quote(model._meta.get_field(name).column)}", [],
                    output_field=TextField())  # fmt: skip
    return model._default_manager.filter(pk=obj.pk).annotate(token=column).values_list("token", flat=True).first()


def export_row(section_, obj):
    row = {name: _field_value(section_, obj, name) for name in section_.all_fields if name not in section_.secrets}
    for name in section_.secrets:
        token = _raw_secret(obj, name)
        row[name] = {"token": token, "data_key_id": key_id_of_token(token)} if token else None
    return row


def _sort_key(row_key):
    return json.dumps(row_key, sort_keys=True, default=str)


def export_document(*, exported_at=None):
    """The configuration as one JSON-safe document."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": (exported_at or datetime.now(UTC)).isoformat(),
        "sections": {},
    }
    key_ids = set()
    for section_ in sections():
        rows = [(natural_key(section_, obj), export_row(section_, obj)) for obj in section_.rows()]
        rows.sort(key=lambda pair: _sort_key(pair[0]))
        document["sections"][section_.name] = [row for _, row in rows]
        for _, row in rows:
            for name in section_.secrets:
                if row.get(name):
                    key_ids.add(row[name]["data_key_id"])
    document["data_key_ids"] = sorted(key_id for key_id in key_ids if key_id)
    return document


def canonical(document):
    """The document's bytes as written to the archive (sorted keys, stable layout)."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False).encode()


def content(document):
    """The document without its timestamp: equal contents mean the same configuration."""
    return {key: value for key, value in document.items() if key != "exported_at"}


# ---------------------------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------------------------


class RestoreError(ValidationError):
    """An archive that cannot be restored: the message says which section and row, and why."""


def check_document(document):
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RestoreError("Not a DeliveryHub configuration document.")
    if document.get("version") != VERSION:
        raise RestoreError(f"Configuration format version {document.get('version')!r} is not supported "
                           f"(this install reads version {VERSION}).")  # fmt: skip
    if not isinstance(document.get("sections"), dict):
        raise RestoreError("The document has no sections.")
    known = {s.name for s in sections()}
    unknown = sorted(set(document["sections"]) - known)
    if unknown:
        raise RestoreError(f"Sections this install does not know: {', '.join(unknown)} (an archive of a newer "
                           "version?).")  # fmt: skip
    have = {key_id(raw) for raw in configured_keys()}
    missing = sorted(set(document.get("data_key_ids", [])) - have)
    if missing:
        raise RestoreError(f"The archive's secrets are encrypted with data key(s) {', '.join(missing)}, which this "
                           "install does not have: add that key to DELIVERYHUB_DATA_KEY (after the current one).")


class _SkippedReference(Exception):
    """A row refers to a row the restore left out on purpose (`on_restore`): it is left out too."""


class _Resolver:
    """Natural keys → objects, per section, cached as rows are restored; keys of rows left out on purpose."""

    def __init__(self):
        self.cache = {}
        self.skipped = set()

    def skip(self, section_, key):
        self.skipped.add((section_.name, _sort_key(key)))

    def get(self, section_name, key):
        if key is None:
            return None
        cache_key = (section_name, _sort_key(key))
        if cache_key in self.skipped:
            raise _SkippedReference
        if cache_key in self.cache:
            return self.cache[cache_key]
        section_ = section(section_name)
        lookup = self.lookup(section_, key)
        obj = section_.model._default_manager.filter(**lookup).first()
        if obj is None:
            raise RestoreError(f"{section_name}: no row with key {key} (referenced by another row).")
        self.cache[cache_key] = obj
        return obj

    def lookup(self, section_, key):
        if len(key) != len(section_.identity):
            raise RestoreError(f"{section_.name}: a key has {len(key)} parts, {len(section_.identity)} expected.")
        lookup = {}
        for name, value in zip(section_.identity, key, strict=True):
            if name in section_.refs:
                lookup[name] = self.get(section_.refs[name], value)
            elif name in section_.secrets:
                raise RestoreError(f"{section_.name}: a secret cannot be part of a key.")
            else:
                lookup[name] = _python_value(section_.model, name, value)
        return lookup

    def remember(self, section_, key, obj):
        self.cache[(section_.name, _sort_key(key))] = obj


def _python_value(model, name, value):
    field_ = model._meta.get_field(name)
    if value is None:
        return None
    if isinstance(field_, models.UUIDField):
        try:
            return uuid.UUID(str(value))
        except ValueError:
            raise RestoreError(f"{model._meta.label}.{name}: {value!r} is not a UUID.") from None
    if isinstance(field_, models.DateTimeField):
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            raise RestoreError(f"{model._meta.label}.{name}: {value!r} is not a date and time.")
        return parsed
    if isinstance(field_, models.DateField):
        parsed = parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            raise RestoreError(f"{model._meta.label}.{name}: {value!r} is not a date.")
        return parsed
    return value


def _apply(section_, obj, row, resolver):
    """Set `row`'s values on `obj`; return whether anything changed."""
    changed = obj._state.adding
    for name in section_.all_fields:
        if name not in row:
            raise RestoreError(f"{section_.name}: a row has no {name!r}.")
        value = row[name]
        if name in section_.refs:
            value = resolver.get(section_.refs[name], value)
            if getattr(obj, f"{name}_id") != (value.pk if value is not None else None):
                setattr(obj, name, value)
                changed = True
            continue
        if name in section_.secrets:
            if value is not None and (not isinstance(value, dict) or not isinstance(value.get("token"), str)):
                raise RestoreError(f"{section_.name}.{name}: a secret is {{\"token\": …, \"data_key_id\": …}}.")
            token = value["token"] if value else ""
            current = _raw_secret(obj, name) if obj.pk else None
            if current != token:
                setattr(obj, name, Ciphertext(token) if token else "")
                changed = True
            continue
        value = _python_value(section_.model, name, value)
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def import_document(document, *, options=None):
    """Restore `document` (one transaction); returns {section: {"created": n, "updated": n, "unchanged": n}}."""
    options = options or ImportOptions()
    if options.scheduled not in SCHEDULED_CHOICES:
        raise RestoreError(f"scheduled must be one of {', '.join(SCHEDULED_CHOICES)}.")
    check_document(document)
    summary = {}
    with transaction.atomic():
        resolver = _Resolver()
        for section_ in sections():
            rows = document["sections"].get(section_.name, [])
            if not isinstance(rows, list):
                raise RestoreError(f"{section_.name}: rows are a list.")
            counts = {"created": 0, "updated": 0, "unchanged": 0, "skipped": 0}
            pending_bulk = []
            for index, row in enumerate(rows):
                if not isinstance(row, dict):
                    raise RestoreError(f"{section_.name}[{index}]: a row is an object.")
                key = [row.get(name) for name in section_.identity]
                try:
                    lookup = resolver.lookup(section_, key)
                    obj = section_.model._default_manager.filter(**lookup).first()
                    created = obj is None
                    if created:
                        obj = section_.model(**lookup)
                    changed = _apply(section_, obj, row, resolver)
                    if section_.on_restore is not None and section_.on_restore(obj, row, options) is False:
                        raise _SkippedReference
                    if not changed:
                        counts["unchanged"] += 1
                        resolver.remember(section_, key, obj)
                        continue
                    obj.full_clean(validate_unique=False, validate_constraints=False)
                except _SkippedReference:
                    resolver.skip(section_, key)
                    counts["skipped"] += 1
                    continue
                except ValidationError as exc:
                    raise RestoreError(f"{section_.name}[{index}] {key}: {'; '.join(exc.messages)}") from None
                if section_.bulk:
                    pending_bulk.append((created, obj))
                else:
                    obj.save()
                    resolver.remember(section_, key, obj)
                counts["created" if created else "updated"] += 1
            if pending_bulk:
                new = [obj for created, obj in pending_bulk if created]
                old = [obj for created, obj in pending_bulk if not created]
                section_.model._default_manager.bulk_create(new, batch_size=1000)
                if old:
                    section_.model._default_manager.bulk_update(old, list(section_.fields), batch_size=1000)
            summary[section_.name] = counts
        audit.record(
            "config.import",
            object_type="deliveryhub.configuration",
            object_repr="configuration archive",
            postchange={"exported_at": document.get("exported_at"), "sections": summary,
                        "scheduled": options.scheduled},
            message="Configuration restored from an archive.",
        )  # fmt: skip
    return summary


# ---------------------------------------------------------------------------------------------------------------------
# Differences (dry run)
# ---------------------------------------------------------------------------------------------------------------------


def diff(document, live=None):
    """{section: {"added": [key], "changed": [(key, {field: (live, archive)})], "only_here": [key]}} for the
    sections that differ between an archive's document and the live configuration (`live`: its export)."""
    check_document(document)
    live = live or export_document()
    result = {}
    for section_ in sections():
        def keyed(rows, section_=section_):
            return {_sort_key([row.get(name) for name in section_.identity]): row for row in rows}

        archive_rows = keyed(document["sections"].get(section_.name, []))
        live_rows = keyed(live["sections"].get(section_.name, []))
        added = [json.loads(k) for k in archive_rows if k not in live_rows]
        only_here = [json.loads(k) for k in live_rows if k not in archive_rows]
        changed = []
        for k, row in archive_rows.items():
            if k in live_rows and live_rows[k] != row:
                fields = {name: (live_rows[k].get(name), row.get(name)) for name in row
                          if live_rows[k].get(name) != row.get(name)}  # fmt: skip
                changed.append((json.loads(k), fields))
        if added or only_here or changed:
            result[section_.name] = {"added": added, "changed": changed, "only_here": only_here}
    return result


# ---------------------------------------------------------------------------------------------------------------------
# The core's sections: tenants, members (never passwords: restored accounts sign in after a password reset),
# their roles, and the platform signing key (still encrypted).
# ---------------------------------------------------------------------------------------------------------------------


def _members_and_operators():
    return User.objects.filter(Q(memberships__isnull=False) | Q(is_superuser=True)).distinct()


def _restore_user(user, row, options):
    if user._state.adding:
        user.set_unusable_password()  # passwords are never in a backup


def _restore_signing_key(key, row, options):
    if row.get("active"):
        for other in SigningKey.objects.filter(active=True).exclude(fingerprint=key.fingerprint):
            other.active = False  # the archive's key becomes the platform's; the local one stays for verifying
            other.save()


register(Section("core.signing_keys", SigningKey, order=1, key=("fingerprint",),
                 fields=("certificate_pem", "subject", "not_after", "active"), secrets=("private_key",),
                 on_restore=_restore_signing_key))  # fmt: skip
register(Section("core.tenants", Tenant, order=10, key=("slug",), fields=("name", "time_zone", "is_active")))
register(Section("core.users", User, order=11, key=("username",),
                 fields=("email", "first_name", "last_name", "is_active", "is_staff", "is_superuser"),
                 queryset=_members_and_operators, on_restore=_restore_user))  # fmt: skip
register(Section("core.memberships", Membership, order=12, key=("tenant", "user"), fields=("role",),
                 refs={"tenant": "core.tenants", "user": "core.users"}))  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# The archive: a signed ZIP holding config.json
# ---------------------------------------------------------------------------------------------------------------------

ARCHIVE_DOCUMENT = "config.json"


def write_archive(target):
    """Export the configuration to a signed archive at `target`; returns the document."""
    signing.active_key()  # generated now on first use, so that the archive carries the key that signs it
    document = export_document()
    target = Path(target)
    with tempfile.TemporaryDirectory(dir=target.parent) as workdir:
        path = Path(workdir) / ARCHIVE_DOCUMENT
        path.write_bytes(canonical(document))
        info = {"version": VERSION, "exported_at": document["exported_at"], "data_key_ids": document["data_key_ids"],
                "sections": {name: len(rows) for name, rows in document["sections"].items()}}  # fmt: skip
        signing.write_signed_zip(target, [(ARCHIVE_DOCUMENT, path)], kind="configuration", info=info)
    audit.record(
        "config.export", object_type="deliveryhub.configuration", object_repr="configuration archive",
        postchange={"sha256": signing.file_sha256(target), **info},
        message=f"Configuration exported ({sum(info['sections'].values())} rows).",
    )  # fmt: skip
    return document


def read_archive(source, *, trust_signer=""):
    """The document of a signed archive (path or bytes), after checking its signature; RestoreError if it fails.

    The signer must be one of this install's platform keys, or — on an install that has none yet (a fresh one) —
    the key the archive itself carries, or the certificate fingerprint given as `trust_signer`.
    """
    data = Path(source).read_bytes() if not isinstance(source, bytes) else source
    verification = signing.verify_bytes(data)
    unmodified = verification.intact and verification.covers_everything and not verification.problems
    if verification.kind != "archive" or not unmodified:
        raise RestoreError(f"The archive does not verify: {verification.summary()}")
    if verification.details.get("kind") != "configuration":
        raise RestoreError("This signed archive is not a configuration backup.")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        try:
            document = json.loads(archive.read(ARCHIVE_DOCUMENT))
        except (KeyError, ValueError) as exc:
            raise RestoreError(f"The archive's {ARCHIVE_DOCUMENT} cannot be read: {exc}") from None
    if not verification.trusted:
        carried = {row.get("fingerprint") for row in document.get("sections", {}).get("core.signing_keys", [])}
        fresh = not SigningKey.objects.exists()
        if not (trust_signer and trust_signer == verification.fingerprint) and not (
            fresh and verification.fingerprint in carried
        ):
            raise RestoreError(
                f"The archive is intact but signed by a key this install does not know ({verification.signer}, "
                f"certificate {verification.fingerprint}). If you trust it, import with --trust-signer "
                f"{verification.fingerprint}."
            )
    check_document(document)
    return document, verification


# ---------------------------------------------------------------------------------------------------------------------
# Jobs of the operator page
# ---------------------------------------------------------------------------------------------------------------------

BACKUP_DIR = "backups"  # archives written by the operator page, under MEDIA_ROOT
UPLOAD_DIR = "imports"  # archives uploaded for a restore, under MEDIA_ROOT


class ConfigExportRunner(JobRunner):
    """Write a configuration archive under MEDIA_ROOT/backups/ for the operator to download."""

    name = "Configuration backup"
    queue = QUEUE_LOW

    def run(self, job):
        target = Path(settings.MEDIA_ROOT) / BACKUP_DIR / f"deliveryhub-config-{job.uuid}.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        self.progress(job, 10, "Exporting the configuration.")
        document = write_archive(target)
        job.result_file = f"{BACKUP_DIR}/{target.name}"
        job.result = {"sha256": signing.file_sha256(target), "size": target.stat().st_size,
                      "sections": {name: len(rows) for name, rows in document["sections"].items()}}  # fmt: skip
        job.save(update_fields=["result_file", "result"])
        self.progress(job, 100, f"Wrote {sum(job.result['sections'].values())} rows, SHA-256 {job.result['sha256']}.")


class ConfigImportRunner(JobRunner):
    """Restore an uploaded configuration archive (checked again: the upload may have been replaced meanwhile)."""

    name = "Configuration restore"
    queue = QUEUE_LOW

    def run(self, job):
        root = (Path(settings.MEDIA_ROOT) / UPLOAD_DIR).resolve()
        path = (root / job.params.get("upload", "")).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise JobFailed("The uploaded archive is no longer there: upload it again.")
        try:
            document, _ = read_archive(path, trust_signer=job.params.get("trust_signer", ""))
            summary = import_document(document, options=ImportOptions(scheduled=job.params.get("scheduled", "paused")))
        except RestoreError as exc:
            raise JobFailed("Nothing was changed: " + "; ".join(exc.messages)) from None
        finally:
            path.unlink(missing_ok=True)
        job.result = {"sections": summary}
        job.save(update_fields=["result"])
        created = sum(c["created"] for c in summary.values())
        updated = sum(c["updated"] for c in summary.values())
        self.progress(job, 100, f"Restored: {created} created, {updated} updated.")
