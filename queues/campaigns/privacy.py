"""
Personal data of campaigns for data-subject requests and retention (registered with deliveryhub.privacy through
`queues.privacy`, which imports this module).

- Contacts: a subject's contact row (name, custom fields) and its standing on each list. Access lists them;
  erasure deletes them (subscriptions go with them; campaign messages keep their row, pseudonymised by the
  messages step, with `contact` set to NULL). The suppression the messages step keeps stops any re-import from
  mailing the person again: delivery matches an address against its pseudonym too.
- Import files: an uploaded CSV and its validation report under MEDIA_ROOT hold many people's addresses. Erasure
  rewrites the tenant's files line by line, replacing the subject's addresses by their pseudonyms; retention
  deletes both files of finished imports (default 7 days after they finished: the rows are in the database).
"""

import os
from pathlib import Path

from django.conf import settings
from django.db import transaction

from deliveryhub import privacy

from ..choices import IMPORT_FINISHED_STATES
from ..models import Contact, ContactImport, Subscription


def _contacts_of(subject):
    return Contact.objects.filter(tenant_id=subject.tenant_id, email__in=subject.addresses)


@privacy.subject_data("contacts", title="Contacts and list memberships", order=15,
                      columns=("email", "name", "created", "lists"))  # fmt: skip
def contacts_of(subject):
    contacts = list(_contacts_of(subject).order_by("pk"))
    standing = {}
    for row in (
        Subscription.objects.filter(contact__in=contacts)
        .select_related("contact_list")
        .order_by("contact_list__name")
    ):
        standing.setdefault(row.contact_id, []).append(
            {"list": row.contact_list.name, "status": row.status, "since": row.created.isoformat(),
             "updated": row.updated.isoformat()}  # fmt: skip
        )
    for contact in contacts:
        yield {
            "email": contact.email,
            "name": contact.name,
            "attributes": contact.attributes,
            "created": contact.created.isoformat(),
            "updated": contact.last_updated.isoformat(),
            "lists": ", ".join(f"{s['list']} ({s['status']})" for s in standing.get(contact.pk, ())),
            "subscriptions": standing.get(contact.pk, []),
        }


@privacy.subject_erasure("contacts", order=15)
def erase_contacts(subject):
    """Delete the subject's contacts (their subscriptions cascade); the audit log names them by pseudonym only."""
    contacts = list(_contacts_of(subject))
    subscriptions = Subscription.objects.filter(contact__in=contacts).count()
    for contact in contacts:
        contact.delete()
    return {"contacts": len(contacts), "subscriptions": subscriptions}


def _import_files(queryset):
    """(import id, absolute path) of each stored upload and report of `queryset`'s imports, inside MEDIA_ROOT."""
    root = Path(settings.MEDIA_ROOT).resolve()
    for pk, *paths in queryset.values_list("pk", "path", "report_path"):
        for relative in paths:
            if not relative:
                continue
            path = (root / relative).resolve()
            if path.is_relative_to(root):
                yield pk, path


def _scrub_file(path, subject):
    """Rewrite `path` with the subject's addresses replaced (line by line, into a temporary file swapped in);
    True when something changed."""
    needles = [address.encode() for address in subject.addresses]
    temporary = path.with_name(path.name + ".erasing")
    changed = False
    with path.open("rb") as source, temporary.open("wb") as target:
        for line in source:
            lowered = line.lower()
            if any(needle in lowered for needle in needles):
                line = subject.scrub_bytes(line)
                changed = True
            target.write(line)
    if changed:
        os.replace(temporary, path)
    else:
        temporary.unlink()
    return changed


@privacy.subject_erasure("import_files", order=16)
def erase_from_import_files(subject):
    """The subject's addresses leave every stored CSV upload and validation report of the tenant."""
    rewritten = 0
    for _, path in _import_files(ContactImport.objects.filter(tenant_id=subject.tenant_id)):
        if path.is_file() and _scrub_file(path, subject):
            rewritten += 1
    return {"import_files": rewritten}


@privacy.retention("import_files", title="Contact import files", default_days=7, order=70,
                   help_text="days after an import finished (its upload and validation report; the rows stay)")
def purge_import_files(scope):
    """Delete the uploads and reports of imports that finished before the cutoff (the import row stays)."""
    if scope.tenant_id is None:
        return 0
    finished = ContactImport.objects.filter(
        tenant_id=scope.tenant_id, state__in=IMPORT_FINISHED_STATES, finished__lt=scope.cutoff
    ).exclude(path="", report_path="")
    count, last = 0, 0
    while True:
        chunk = finished.filter(pk__gt=last).order_by("pk")[: scope.chunk_size]
        files = list(_import_files(chunk))
        ids = list(chunk.values_list("pk", flat=True))
        if not ids:
            return count
        last = ids[-1]
        count += sum(1 for _, path in files if path.is_file())
        if scope.dry_run:
            continue
        with transaction.atomic():
            ContactImport.objects.filter(pk__in=ids).update(path="", report_path="")
            transaction.on_commit(lambda files=files: [path.unlink(missing_ok=True) for _, path in files])
