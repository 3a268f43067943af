"""
Personal data: a registry that every app fills from its own `privacy.py` (discovered like `jobs.py`), so that a
data-subject request and the retention purge reach every table that holds personal data, whoever added it.

An app declares three kinds of contribution:

    from deliveryhub import privacy

    @privacy.subject_data("messages", title="Messages, delivery attempts and events", order=20)
    def messages_of(subject):
        # access: yield JSON-safe dicts about the subject's addresses in subject.tenant_id
        ...

    @privacy.subject_erasure("messages", order=20)
    def erase_messages(subject):
        # erasure (inside the request's transaction): pseudonymise or delete, return {"what": count}
        ...

    @privacy.retention("bodies", title="Message bodies", default_days=30, order=10,
                       help_text="days after the message's final state")
    def purge_bodies(scope):
        # delete what is older than scope.cutoff in scope.tenant_id (None: rows of no tenant), scope.chunk_size
        # rows per transaction; with scope.dry_run count only. Return the number of rows (or files).
        ...

`reports.services` runs the requests and the purge; this module only knows who contributes what. Pseudonyms are
`crypto.pseudonym_address()` values: the same address always gives the same pseudonym, so erased rows of one
person still belong together and an erased recipient stays suppressed.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils.module_loading import autodiscover_modules

from .crypto import pseudonym_address

__all__ = [
    "AccessSection", "ErasureBlocked", "ErasureStep", "PurgeScope", "RetentionKind", "Subject", "access_sections",
    "discover",
    "erasure_steps", "normalise_address", "retention", "retention_kinds", "subject_data", "subject_erasure",
]  # fmt: skip


class ErasureBlocked(Exception):
    """An erasure cannot run now (e.g. the subject's mail is being delivered this second); nothing was changed."""


def normalise_address(address):
    """An address as stored for matching: stripped, lower case (both parts: receivers treat them alike)."""
    return (address or "").strip().lower()


def _replace_folded(data, pairs):
    """`data` (str or bytes) with each lower-case `needle` of `pairs`, found in any case, replaced by its replacement
    (a pseudonym, itself lower case: the folded copy stays in step with the data)."""
    lowered = data.lower()
    for needle, replacement in pairs:
        start = lowered.find(needle)
        while start != -1:
            data = data[:start] + replacement + data[start + len(needle) :]
            lowered = lowered[:start] + replacement + lowered[start + len(needle) :]
            start = lowered.find(needle, start + len(replacement))
    return data


@dataclass(frozen=True)
class Subject:
    """The person a request is about: one or more addresses within one tenant."""

    tenant_id: int
    addresses: tuple[str, ...]

    @classmethod
    def of(cls, tenant_id, addresses):
        unique = dict.fromkeys(normalise_address(address) for address in addresses if normalise_address(address))
        return cls(tenant_id=tenant_id, addresses=tuple(unique))

    @property
    def pseudonyms(self):
        """{address: pseudonym address} for every address of the subject."""
        return {address: pseudonym_address(address) for address in self.addresses}

    def scrub(self, text):
        """`text` with every occurrence of the subject's addresses (any case) replaced by their pseudonyms."""
        return _replace_folded(text, self.pseudonyms.items()) if text else text

    def scrub_bytes(self, data):
        """`scrub()` for bytes (a message body), byte-wise and case-insensitive."""
        pairs = [(address.encode(), alias.encode()) for address, alias in self.pseudonyms.items()]
        return _replace_folded(data, pairs) if data else data

    def scrub_json(self, value):
        """A JSON value (dict, list, str, …) with the subject's addresses replaced inside every string."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_json(item) for item in value]
        if isinstance(value, dict):
            return {self.scrub(key): self.scrub_json(item) for key, item in value.items()}
        return value


@dataclass(frozen=True)
class PurgeScope:
    """What one retention purger is asked to delete: one tenant's rows (or rows of no tenant) older than `cutoff`."""

    tenant_id: int | None
    cutoff: datetime
    now: datetime
    dry_run: bool
    chunk_size: int


@dataclass(frozen=True)
class AccessSection:
    """A part of the access archive: `func(subject)` yields records; `columns` are shown in the PDF summary."""

    name: str
    title: str
    func: object
    order: int
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ErasureStep:
    """One app's part of an erasure: `func(subject)` returns {"what": rows changed or deleted}."""

    name: str
    func: object
    order: int


@dataclass(frozen=True)
class RetentionKind:
    """A kind of data with a retention period: `func(scope)` deletes (or counts) what is past it."""

    name: str
    title: str
    func: object
    default_days: int
    order: int
    help_text: str = ""
    per_tenant: bool = True  # False: platform-wide data (only the platform default applies)


_access: dict[str, AccessSection] = {}
_erasure: dict[str, ErasureStep] = {}
_retention: dict[str, RetentionKind] = {}


def subject_data(name, *, title, order=100, columns=()):
    """Declare an access-archive section: the decorated function yields the subject's records."""

    def decorator(func):
        _access[name] = AccessSection(name=name, title=title, func=func, order=order, columns=tuple(columns))
        return func

    return decorator


def subject_erasure(name, *, order=100):
    """Declare an erasure step: the decorated function erases the subject's data and returns counts."""

    def decorator(func):
        _erasure[name] = ErasureStep(name=name, func=func, order=order)
        return func

    return decorator


def retention(name, *, title, default_days, order=100, help_text="", per_tenant=True):
    """Declare a retention kind: the decorated function purges what is older than the scope's cutoff."""
    if int(default_days) <= 0:
        raise ValueError("A retention period is a positive number of days.")

    def decorator(func):
        _retention[name] = RetentionKind(
            name=name, title=title, func=func, default_days=int(default_days), order=order, help_text=help_text,
            per_tenant=per_tenant,
        )  # fmt: skip
        return func

    return decorator


def discover():
    """Import every installed app's `privacy` module so that its contributions register."""
    autodiscover_modules("privacy")


def access_sections():
    discover()
    return sorted(_access.values(), key=lambda s: (s.order, s.name))


def erasure_steps():
    discover()
    return sorted(_erasure.values(), key=lambda s: (s.order, s.name))


def retention_kinds():
    discover()
    return sorted(_retention.values(), key=lambda k: (k.order, k.name))


def retention_kind(name):
    discover()
    return _retention[name]
