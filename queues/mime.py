"""
Building and checking RFC 5322 messages for intake: addresses (RFC 5321 limits, IDN domains), header fields
without CR/LF, structured fields → MIME, raw MIME → normalised bytes.

Everything here raises `django.core.exceptions.ValidationError` with a field-keyed dict, so the API answers
field-level 400s and the SMTP listener a 5xx with the same words.
"""

import base64
import binascii
import email.policy
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, make_msgid

from django.core.exceptions import ValidationError
from django.utils import timezone

from .constants import (
    CUSTOM_HEADERS_MAX,
    DOMAIN_MAX,
    HEADER_LINE_MAX,
    HEADER_NAME_MAX,
    HEADER_VALUE_MAX,
    LABEL_MAX,
    LOCAL_PART_MAX,
    PATH_MAX,
    SUBJECT_MAX,
)

# RFC 5322 atext, dot-atom local parts only (no quoted strings: they are where parsers disagree).
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LDH_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII except colon
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters other than TAB, including CR and LF
_DISPLAY = re.compile(r"^\s*(?P<name>.*?)\s*<(?P<addr>[^<>]*)>\s*$", re.S)

# Headers a caller may not set through `headers`: we write them, or a receiver does, or they would change meaning.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
        "Content-Transfer-Encoding", "Content-Disposition", "DKIM-Signature", "Return-Path", "Received", "Sender",
        "Resent-From", "Resent-To", "Resent-Cc", "Resent-Bcc", "Resent-Date", "Resent-Message-ID",
    )
)  # fmt: skip


def normalize_domain(domain, field="address"):
    """The ASCII (IDNA) form of a domain, lower case; ValidationError when it is not a valid host name."""
    domain = (domain or "").strip().rstrip(".")
    if not domain:
        raise ValidationError({field: "The domain is missing."})
    if _CONTROL.search(domain) or " " in domain:
        raise ValidationError({field: "The domain contains spaces or control characters."})
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        raise ValidationError({field: f"{domain!r} is not a valid (internationalised) domain name."}) from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > DOMAIN_MAX or len(labels) < 2:
        raise ValidationError({field: f"{domain!r} is not a fully qualified domain name."})
    for label in labels:
        if len(label) > LABEL_MAX or not _LDH_LABEL.match(label):
            raise ValidationError({field: f"{domain!r} is not a valid domain name."})
    if labels[-1].isdigit():
        raise ValidationError({field: f"{domain!r}: address literals and numeric top-level domains are refused."})
    return ascii_domain


def normalize_address(address, field="address"):
    """`local@domain` with the domain in ASCII (IDNA) form, within RFC 5321 limits; ValidationError otherwise."""
    if not isinstance(address, str):
        raise ValidationError({field: "An email address must be a string."})
    address = address.strip()
    if _CONTROL.search(address):
        raise ValidationError({field: "The address contains control characters (CR, LF, …)."})
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise ValidationError({field: f"{address!r} is not an email address."})
    if not _LOCAL_PART.match(local):
        raise ValidationError({field: f"{address!r}: the part before @ has characters that are not allowed."})
    if len(local.encode()) > LOCAL_PART_MAX:
        raise ValidationError({field: f"{address!r}: the part before @ is longer than {LOCAL_PART_MAX} octets."})
    result = f"{local}@{normalize_domain(domain, field)}"
    if len(result) + 2 > PATH_MAX:
        raise ValidationError({field: f"{address!r} is longer than {PATH_MAX - 2} octets."})
    return result


def parse_mailbox(value, field):
    """`"Name <a@b>"` or `"a@b"` → `Address`; the display name may not carry control characters."""
    if not isinstance(value, str):
        raise ValidationError({field: "An address must be a string like 'Name <user@example.com>'."})
    if _CONTROL.search(value):
        raise ValidationError({field: "The address contains control characters (CR, LF, …)."})
    match = _DISPLAY.match(value)
    name, addr = (match.group("name").strip().strip('"'), match.group("addr")) if match else ("", value)
    addr = normalize_address(addr, field)
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def check_header(name, value, field="headers"):
    """A custom header: a valid, non-reserved name and a value without CR/LF or other control characters."""
    if not isinstance(name, str) or not _HEADER_NAME.match(name) or len(name) > HEADER_NAME_MAX:
        raise ValidationError({field: f"{name!r} is not a valid header name."})
    if name.lower() in RESERVED_HEADERS:
        raise ValidationError({field: f"The {name} header is set by DeliveryHub; use the matching field instead."})
    if not isinstance(value, str):
        raise ValidationError({field: f"The value of {name} must be a string."})
    if _CONTROL.search(value):
        raise ValidationError({field: f"The value of {name} contains CR, LF or another control character."})
    if len(value) > HEADER_VALUE_MAX:
        raise ValidationError({field: f"The value of {name} is longer than {HEADER_VALUE_MAX} characters."})


def _plain(value, field, limit):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({field: "Must be a string."})
    if _CONTROL.search(value):
        raise ValidationError({field: "Contains CR, LF or another control character."})
    if len(value) > limit:
        raise ValidationError({field: f"Longer than {limit} characters."})
    return value


def build_message(*, sender, to=(), cc=(), reply_to=(), subject="", text="", html="", headers=None, attachments=()):
    """Structured fields → (message bytes, From Address). Bcc recipients never appear in the headers.

    `attachments` are dicts with `filename`, `content_type` and base64 `content`. The result has CRLF line
    endings, lines folded or encoded within 998 octets, Date and Message-ID.
    """
    from_address = parse_mailbox(sender, "from")
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = from_address
    if to:
        msg["To"] = [parse_mailbox(a, "to") for a in to]
    if cc:
        msg["Cc"] = [parse_mailbox(a, "cc") for a in cc]
    if reply_to:
        msg["Reply-To"] = [parse_mailbox(a, "reply_to") for a in reply_to]
    msg["Subject"] = _plain(subject, "subject", SUBJECT_MAX)
    msg["Date"] = format_datetime(timezone.now())
    msg["Message-ID"] = make_msgid(domain=from_address.domain)
    headers = headers or {}
    if not isinstance(headers, dict):
        raise ValidationError({"headers": "Headers must be an object of name → value."})
    if len(headers) > CUSTOM_HEADERS_MAX:
        raise ValidationError({"headers": f"At most {CUSTOM_HEADERS_MAX} custom headers."})
    for name, value in headers.items():
        check_header(name, value)
        msg[name] = value
    text = text or ""
    html = html or ""
    if not isinstance(text, str) or not isinstance(html, str):
        raise ValidationError({"text": "text and html must be strings."})
    if "\x00" in text or "\x00" in html:
        raise ValidationError({"text": "The body contains NUL characters."})
    if not text and not html:
        raise ValidationError({"text": "Give a text or an html body (or both)."})
    if text:
        msg.set_content(text, subtype="plain", charset="utf-8")
        if html:
            msg.add_alternative(html, subtype="html", charset="utf-8")
    else:
        msg.set_content(html, subtype="html", charset="utf-8")
    for index, attachment in enumerate(attachments or ()):
        _attach(msg, attachment, f"attachments[{index}]")
    data = msg.as_bytes(policy=email.policy.SMTP)
    return data, from_address


def _attach(msg, attachment, field):
    if not isinstance(attachment, dict):
        raise ValidationError({field: "An attachment is an object with filename, content_type and content."})
    filename = _plain(attachment.get("filename"), f"{field}.filename", 255)
    if not filename:
        raise ValidationError({f"{field}.filename": "A file name is required."})
    content_type = attachment.get("content_type") or "application/octet-stream"
    if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type):
        raise ValidationError({f"{field}.content_type": f"{content_type!r} is not a MIME type like text/csv."})
    try:
        content = base64.b64decode(attachment.get("content") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ValidationError({f"{field}.content": "The content is not valid base64."}) from None
    maintype, subtype = content_type.lower().split("/", 1)
    if maintype == "text":
        # Keep text attachments byte-exact: send them base64 like any other file.
        msg.add_attachment(content, maintype="application", subtype="octet-stream", filename=filename)
        part = msg.get_payload()[-1]
        part.replace_header("Content-Type", content_type)
        part.set_param("name", filename)
    else:
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)


def normalize_raw(data, *, field="raw"):
    """A raw RFC 5322 message → (bytes with CRLF line endings, Date and Message-ID present, Bcc removed, From Address).

    Refuses NUL bytes, lines over 998 octets, a missing or unparsable From, and a header section that does
    not end (no blank line before the body is fine: a message may have no body).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if b"\x00" in data:
        raise ValidationError({field: "The message contains NUL bytes."})
    # One line-ending convention on the way out: every CR, LF or CRLF becomes CRLF.
    lines = re.split(rb"\r\n|\r|\n", data)
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if len(line) > HEADER_LINE_MAX:
            raise ValidationError({field: f"Line {number} is longer than {HEADER_LINE_MAX} octets: fold or encode it."})
    try:
        header_end = lines.index(b"")
    except ValueError:
        header_end = len(lines)
    header_lines, body_lines = lines[:header_end], lines[header_end + 1 :]
    if not header_lines or header_lines[0][:1] in (b" ", b"\t"):
        raise ValidationError({field: "The message has no header section."})
    # Drop Bcc (and its continuation lines): it must never reach recipients.
    kept, skipping = [], False
    for line in header_lines:
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0]
        if b":" not in line or not _HEADER_NAME.match(name.decode("latin-1")):
            raise ValidationError({field: f"Invalid header line: {line[:60]!r}"})
        skipping = name.strip().lower() == b"bcc"
        if not skipping:
            kept.append(line)
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(b"\r\n".join(kept) + b"\r\n\r\n")
    from_values = headers.get_all("From") or []
    if len(from_values) != 1:
        raise ValidationError({field: "The message needs exactly one From header."})
    try:
        addresses = from_values[0].addresses
    except Exception:
        addresses = ()
    if len(addresses) != 1 or not addresses[0].domain:
        raise ValidationError({field: "The From header must hold exactly one address."})
    from_address = parse_mailbox(addresses[0].addr_spec, "from")
    extra = []
    if headers.get("Date") is None:
        extra.append(f"Date: {format_datetime(timezone.now())}".encode())
    if headers.get("Message-ID") is None:
        extra.append(f"Message-ID: {make_msgid(domain=from_address.domain)}".encode())
    out = b"\r\n".join(kept + extra) + b"\r\n\r\n" + b"\r\n".join(body_lines)
    if body_lines:
        out += b"\r\n"
    return out, from_address


def header_summary(data):
    """(subject, from, message-id) of message bytes, shortened for lists."""
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")

    def get(name):
        try:
            return str(headers.get(name) or "")
        except Exception:
            return ""

    return get("Subject")[:255], get("From")[:320], get("Message-ID")[:255]
