"""
DMARC aggregate reports (RFC 7489 appendix C, `rua`): unpacked, parsed and stored per reporter and date range.

A report arrives as mail at a domain's report address: an attachment that is the XML itself, gzip, or a zip holding
one XML file. Untrusted input throughout: sizes are capped after decompression (a zip or gzip bomb stops at
DMARC_REPORT_MAX_BYTES), the XML is parsed with `defusedxml` with DTDs, entities and external references forbidden
(a billion-laughs or XXE report is refused, never expanded), and a report about a domain other than the one whose
address it was sent to is refused. The schema is small (report_metadata, policy_published, record*), so it is read
here rather than through `parsedmarc` and its dependency tree. A reporter's report id is stored once (a resent
report changes nothing).
"""

import email
import email.policy
import gzip
import io
import ipaddress
import zipfile
from datetime import UTC, datetime
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from django.db import IntegrityError, transaction

from ippools.models import IPAddress

from .constants import DMARC_RECORDS_MAX, DMARC_REPORT_MAX_BYTES
from .models import DmarcRecord, DmarcReport

XML_TYPES = ("text/xml", "application/xml")
GZIP_TYPES = ("application/gzip", "application/x-gzip", "application/gzip-compressed")
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip")
READ_CHUNK = 64 * 1024


class ReportRejected(Exception):
    """A DMARC report we cannot use (not a report, too large, unsafe XML, another domain's): the reason says which."""


def _bounded(stream, limit=DMARC_REPORT_MAX_BYTES):
    out = io.BytesIO()
    while chunk := stream.read(READ_CHUNK):
        out.write(chunk)
        if out.tell() > limit:
            raise ReportRejected(f"The report is larger than {limit // (1024 * 1024)} MiB uncompressed.")
    return out.getvalue()


def unpack(data, filename="", content_type=""):
    """The XML bytes of an attachment (plain, gzip or zip), size-capped after decompression."""
    name = (filename or "").lower()
    try:
        if data[:2] == b"\x1f\x8b" or content_type in GZIP_TYPES or name.endswith((".gz", ".gzip")):
            return _bounded(gzip.GzipFile(fileobj=io.BytesIO(data)))
        if data[:4] == b"PK\x03\x04" or content_type in ZIP_TYPES or name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise ReportRejected("A zipped report holds exactly one file.")
                with archive.open(members[0]) as member:
                    return _bounded(member)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ReportRejected(f"The attachment does not decompress: {exc}.") from None
    if len(data) > DMARC_REPORT_MAX_BYTES:
        raise ReportRejected("The report is too large.")
    return data


def attachment_of(content):
    """(bytes, filename, content type) of the report in a mail message (the first XML/gzip/zip part)."""
    msg = email.message_from_bytes(content, policy=email.policy.default)
    for part in msg.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        name = part.get_filename() or ""
        if kind in XML_TYPES + GZIP_TYPES + ZIP_TYPES or name.lower().endswith((".xml", ".gz", ".zip")) or (
            kind == "application/octet-stream" and name
        ):
            return part.get_payload(decode=True) or b"", name, kind
    raise ReportRejected("The message has no report attachment (XML, gzip or zip).")


def _strip_ns(root):
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def _text(node, path, default=""):
    found = node.find(path) if node is not None else None
    return (found.text or "").strip() if found is not None and found.text else default


def _time(value):
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise ReportRejected(f"A date range value is not a Unix time: {value!r}.") from None


def parse(xml):
    """A report's fields and rows from its XML (dict); ReportRejected when it is unsafe or not an aggregate report."""
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ReportRejected(f"Unsafe XML refused ({type(exc).__name__}).") from None
    except ParseError as exc:
        raise ReportRejected(f"Not well-formed XML: {exc}.") from None
    root = _strip_ns(root)
    if root.tag != "feedback":
        raise ReportRejected("Not a DMARC aggregate report (no <feedback> root).")
    meta, policy = root.find("report_metadata"), root.find("policy_published")
    report = {
        "org_name": _text(meta, "org_name")[:200],
        "reporter_email": _text(meta, "email")[:320],
        "report_id": _text(meta, "report_id")[:200],
        "date_begin": _time(_text(meta, "date_range/begin")),
        "date_end": _time(_text(meta, "date_range/end")),
        "policy_domain": _text(policy, "domain").lower().rstrip(".")[:255],
        "policy": _text(policy, "p")[:20],
    }
    if not report["org_name"] or not report["report_id"] or not report["policy_domain"]:
        raise ReportRejected("The report lacks org_name, report_id or the published policy's domain.")
    rows = []
    for record in root.findall("record"):
        row = record.find("row")
        try:
            count = int(_text(row, "count", "0"))
        except ValueError:
            raise ReportRejected("A record's count is not a number.") from None
        auth = record.find("auth_results")
        rows.append({
            "source_ip": _text(row, "source_ip"), "count": max(count, 0),
            "disposition": _text(row, "policy_evaluated/disposition")[:20],
            "dkim": _text(row, "policy_evaluated/dkim")[:10], "spf": _text(row, "policy_evaluated/spf")[:10],
            "header_from": _text(record, "identifiers/header_from")[:255],
            "dkim_domain": _text(auth, "dkim/domain")[:255], "spf_domain": _text(auth, "spf/domain")[:255],
        })  # fmt: skip
        if len(rows) > DMARC_RECORDS_MAX:
            raise ReportRejected(f"More than {DMARC_RECORDS_MAX} records.")
    return report, rows


def _covers(domain_name, policy_domain):
    return policy_domain == domain_name or policy_domain.endswith(f".{domain_name}")


def store(domain, report, rows):
    """Save a parsed report for `domain` (the same reporter's report id again: the stored one, unchanged)."""
    if not _covers(domain.name, report["policy_domain"]):
        raise ReportRejected(f"The report is about {report['policy_domain']}, not {domain.name}.")
    valid = []
    for row in rows:
        try:
            row["source_ip"] = str(ipaddress.ip_address(row["source_ip"]))
        except ValueError:
            continue  # a row without a usable address says nothing about who sends
        valid.append(row)
    ours = set(IPAddress.objects.filter(address__in={r["source_ip"] for r in valid}).values_list("address", flat=True))
    existing = DmarcReport.objects.filter(sending_domain=domain, org_name=report["org_name"],
                                          report_id=report["report_id"]).first()  # fmt: skip
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            stored = DmarcReport.objects.create(tenant_id=domain.tenant_id, sending_domain=domain,
                                                message_count=sum(r["count"] for r in valid), **report)  # fmt: skip
            DmarcRecord.objects.bulk_create(
                [DmarcRecord(report=stored, ours=r["source_ip"] in ours, **r) for r in valid], batch_size=1000
            )
    except IntegrityError:  # the same report, stored by a concurrent delivery of it
        return DmarcReport.objects.get(sending_domain=domain, org_name=report["org_name"],
                                       report_id=report["report_id"])  # fmt: skip
    return stored


def ingest_message(domain, content):
    """A mail message carrying an aggregate report about `domain` → the stored DmarcReport (ReportRejected if not)."""
    data, name, kind = attachment_of(content)
    report, rows = parse(unpack(data, name, kind))
    return store(domain, report, rows)
