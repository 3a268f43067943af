"""
Building and checking RFC 5322 messages for intake: addresses (RFC 5321 limits, IDN domains), header fields
without CR/LF, structured fields → MIME, raw MIME → normalised bytes.

Structured messages are written by our own writer, not by the `email` package (which took most of intake's time),
and it is strict where that package was lenient:

* every header is 7-bit: non-ASCII text goes out as RFC 2047 encoded words (UTF-8), file names as RFC 2231
  parameters, so no peer needs SMTPUTF8 for a message we built;
* encoded words a client sent (`=?utf-8?b?…?=`) are decoded as a receiver would decode them and the decoded text
  is checked like any other: one that decodes to CR/LF (a header injection) or another control character, or that
  does not decode, is refused (the `email` package decoded such a word into a real line break);
* CR, LF, other C0/C1 control characters, U+2028/U+2029 line and paragraph separators and unpaired surrogates are
  refused in every header field (Python's `str.splitlines()` breaks lines at U+2028 and U+0085);
* lines stay within 76 octets where a header can be folded (998 at most anywhere), bodies are 7bit when ASCII
  with short lines, else quoted-printable or base64, whichever is shorter; attachments base64.

Everything here raises `django.core.exceptions.ValidationError` with a field-keyed dict, so the API answers
field-level 400s and the SMTP listener a 5xx with the same words.
"""

import base64
import binascii
import email.policy
import functools
import re
import uuid
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.utils import timezone

from .constants import (
    CUSTOM_HEADERS_MAX,
    DOMAIN_MAX,
    FILENAME_MAX,
    HEADER_FOLD_AT,
    HEADER_LINE_MAX,
    HEADER_NAME_MAX,
    HEADER_VALUE_MAX,
    LABEL_MAX,
    LINE_SHOULD_MAX,
    LOCAL_PART_MAX,
    PATH_MAX,
    SUBJECT_MAX,
)

# RFC 5322 atext, dot-atom local parts only (no quoted strings: they are where parsers disagree).
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LDH_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII except colon
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
# Refused in header fields and addresses: C0 controls but TAB (CR and LF included), DEL, C1 controls (U+0085 NEL
# among them), the Unicode line and paragraph separators, and unpaired surrogates (they cannot be encoded).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_LINE_SEPARATORS = re.compile("[\x0a\x0b\x0c\x0d\x1c-\x1e\x85\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_DISPLAY = re.compile(r"^\s*(?P<name>.*?)\s*<(?P<addr>[^<>]*)>\s*$", re.S)
# RFC 2047 encoded word, as lenient readers find it (anywhere in the text).
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")
_BETWEEN_ENCODED_WORDS = re.compile(r"[ \t]*")
_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")  # atoms and spaces
_QUOTABLE = re.compile(r"^[ -~]*$")  # printable ASCII (and space): may go in a quoted string
_PIECE = re.compile(r"[ \t]*[^ \t]+")  # a word with the whitespace before it: headers fold before that whitespace
_QUOTED_PARAMETER = re.compile(r'^[ !#-\[\]-~]+$')  # printable ASCII but " and \: may be quoted as it is
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")

_ATTRIBUTE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~")  # RFC 2231
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")  # RFC 2047 5(3)
_EW_OVERHEAD = len("=?utf-8?q??=")
_EW_MAX = 75  # RFC 2047 2: an encoded word is at most 75 characters
BASE64_LINE = 76  # characters per base64 line (RFC 2045 6.8)
QP_LINE_MAX = 76  # characters per quoted-printable line, the soft break's "=" included (RFC 2045 6.7)
# Octets that quoted-printable leaves as they are: TAB, LF (a line break here) and printable ASCII but "=".
_QP_LITERAL = bytes([9, 10, *range(32, 61), *range(62, 127)])

# Headers a caller may not set through `headers`: we write them, or a receiver does, or they would change meaning.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
        "Content-Transfer-Encoding", "Content-Disposition", "DKIM-Signature", "Return-Path", "Received", "Sender",
        "Resent-From", "Resent-To", "Resent-Cc", "Resent-Bcc", "Resent-Date", "Resent-Message-ID",
    )
)  # fmt: skip


class Mailbox(NamedTuple):
    """A display name and an address (local part, ASCII domain), as parsed from `"Name <user@example.com>"`."""

    display_name: str
    username: str
    domain: str

    @property
    def addr_spec(self):
        return f"{self.username}@{self.domain}"

    def __str__(self):
        return f"{self.display_name} <{self.addr_spec}>" if self.display_name else self.addr_spec


@dataclass(frozen=True, slots=True)
class Content:
    """A message ready to store: its bytes and what lists show of it (subject, From, Message-ID)."""

    data: bytes
    sender: Mailbox  # the From mailbox
    subject: str
    from_header: str
    message_id: str


# ---------------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------------


def _refuse_controls(value, field, what):
    """ValidationError naming the kind of character when `value` holds one that no header may carry."""
    found = _CONTROL.search(value)
    if found is None:
        return
    char = found.group()
    if _LINE_SEPARATORS.match(char):
        reason = f"a line break ({_codepoint(char)})" if char in "\r\n" else f"a line separator ({_codepoint(char)})"
    elif _SURROGATE.match(char):
        reason = "an unpaired surrogate (not a character)"
    else:
        reason = f"a control character ({_codepoint(char)})"
    raise ValidationError({field: f"{what} contains {reason}: CR, LF and other control characters are not allowed."})


def _codepoint(char):
    return {"\r": "CR", "\n": "LF"}.get(char, f"U+{ord(char):04X}")


def _decode_encoded_words(value, field, what):
    """Text with RFC 2047 encoded words decoded as a receiver would (whitespace between two of them dropped).

    A word that does not decode (bad base64, unknown charset, bytes invalid in it) is refused; what it decodes to
    is checked by the caller like any other text.
    """
    if "=?" not in value or not _ENCODED_WORD.search(value):
        return value
    out, position, after_word = [], 0, False
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        if not (after_word and _BETWEEN_ENCODED_WORDS.fullmatch(between)):
            out.append(between)
        charset, encoding, payload = match.groups()
        charset = charset.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*en
        try:
            if encoding in "Bb":
                octets = base64.b64decode(payload, validate=True)
            else:
                octets = binascii.a2b_qp(payload.encode("ascii"), header=True)
            out.append(octets.decode(charset))
        except (ValueError, LookupError, UnicodeError, binascii.Error):
            raise ValidationError(
                {field: f"{what} holds {match.group()[:60]!r}, which is not a valid RFC 2047 encoded word."}
            ) from None
        position, after_word = match.end(), True
    out.append(value[position:])
    return "".join(out)


def header_text(value, field, what, limit):
    """A header field's text: a string without control characters (encoded words decoded and checked too)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({field: f"{what} must be a string."})
    _refuse_controls(value, field, what)
    if len(value) > limit:
        raise ValidationError({field: f"{what} is longer than {limit} characters."})
    decoded = _decode_encoded_words(value, field, what)
    if decoded is not value:
        _refuse_controls(decoded, field, f"{what} (decoded)")
    return decoded


def normalize_domain(domain, field="address"):
    """The ASCII (IDNA) form of a domain, lower case; ValidationError when it is not a valid host name."""
    domain = (domain or "").strip().rstrip(".")
    if not domain:
        raise ValidationError({field: "The domain is missing."})
    if _CONTROL.search(domain) or " " in domain:
        raise ValidationError({field: "The domain contains spaces or control characters."})
    if domain.isascii():
        ascii_domain = domain.lower()
        if "xn--" in ascii_domain:  # an A-label must decode (and round-trip) like any IDN
            try:
                ascii_domain.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                raise ValidationError({field: f"{domain!r} is not a valid (internationalised) domain name."}) from None
    else:
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
    """`"Name <a@b>"` or `"a@b"` → `Mailbox`; the display name may not carry control characters."""
    if not isinstance(value, str):
        raise ValidationError({field: "An address must be a string like 'Name <user@example.com>'."})
    if _CONTROL.search(value):
        raise ValidationError({field: "The address contains control characters (CR, LF, …)."})
    match = _DISPLAY.match(value) if "<" in value else None
    name, addr = (match.group("name").strip().strip('"'), match.group("addr")) if match else ("", value)
    if name:
        name = header_text(name, field, "The display name", HEADER_VALUE_MAX)
    local, _, domain = normalize_address(addr, field).rpartition("@")
    return Mailbox(name, local, domain)


def check_header(name, value, field="headers"):
    """A custom header: a valid, non-reserved name and a value without CR/LF or other control characters.

    Returns the value's text (encoded words decoded and checked).
    """
    if not isinstance(name, str) or not _HEADER_NAME.match(name) or len(name) > HEADER_NAME_MAX:
        raise ValidationError({field: f"{name!r} is not a valid header name."})
    if name.lower() in RESERVED_HEADERS:
        raise ValidationError({field: f"The {name} header is set by DeliveryHub; use the matching field instead."})
    if not isinstance(value, str):
        raise ValidationError({field: f"The value of {name} must be a string."})
    return header_text(value, field, f"The value of {name}", HEADER_VALUE_MAX)


def _body_octets(value, field):
    """A text or html body as UTF-8 octets, with LF line breaks (from CR, LF or CRLF) and a final one; b"" when empty.

    NUL characters and unpaired surrogates (which no encoding can carry) are refused.
    """
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise ValidationError({field: "text and html must be strings."})
    if "\x00" in value:
        raise ValidationError({field: "The body contains NUL characters."})
    try:
        octets = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError({field: "The body contains unpaired surrogates (not characters)."}) from None
    if b"\r" in octets:
        octets = octets.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return octets if octets.endswith(b"\n") else octets + b"\n"


# ---------------------------------------------------------------------------------------------------------------------
# The writer: header fields
# ---------------------------------------------------------------------------------------------------------------------


def _fold(name, pieces):
    """`Name:` and its pieces on lines of at most HEADER_FOLD_AT octets where whitespace allows a fold.

    A piece starts with the whitespace before it; folding puts CRLF before that whitespace, so unfolding (removing
    CRLF) gives the value back exactly. The first piece stays on the first line (a value that starts on the next
    line reads back with a leading space in some parsers).
    """
    line, lines = f"{name}:", []
    for piece in pieces:
        if len(line) + len(piece) > HEADER_FOLD_AT and piece[:1] in (" ", "\t") and len(line) > len(name) + 1:
            lines.append(line)
            line = piece
        else:
            line += piece
    lines.append(line)
    return "\r\n".join(lines)


def _encoded_words(text, first=_EW_MAX):
    """`text` as UTF-8 encoded words, whole characters each: the first at most `first` characters long (where one
    character fits), the others at most 75 (RFC 2047 2). Q or B encoding, whichever is shorter.

    Q leaves only the characters allowed in every context (RFC 2047 5(3)) as they are, so the words also serve in
    display names.
    """
    octets = text.encode("utf-8")
    q_units = ["_" if c == " " else c if c in _Q_SAFE else "".join(f"={b:02X}" for b in c.encode()) for c in text]
    if sum(map(len, q_units)) <= 4 * ((len(octets) + 2) // 3):
        prefix, units, join = "=?utf-8?q?", q_units, "".join

        def room(length):
            return length - _EW_OVERHEAD
    else:
        prefix, units = "=?utf-8?b?", [c.encode() for c in text]

        def join(chunk):
            return base64.b64encode(b"".join(chunk)).decode()

        def room(length):
            return (length - _EW_OVERHEAD) // 4 * 3  # octets that encode to at most that many characters

    chunks, current, used, limit = [], [], 0, room(first)
    for unit in units:
        if used + len(unit) > limit and current:
            chunks.append(current)
            current, used, limit = [], 0, room(_EW_MAX)
        current.append(unit)
        used += len(unit)
    chunks.append(current)
    return [f"{prefix}{join(chunk)}?=" for chunk in chunks]


def _needs_encoding(text):
    """Text that cannot go out as it is: non-ASCII, or holding what a reader would take for an encoded word."""
    return not text.isascii() or ("=?" in text and _ENCODED_WORD.search(text) is not None)


def unstructured(name, text):
    """An unstructured header field (Subject, custom headers): plain ASCII folded at spaces, else encoded words."""
    text = text.strip(" \t")
    if not text:
        return f"{name}:"
    if not _needs_encoding(text):
        if len(name) + 2 + len(text) <= HEADER_FOLD_AT:
            return f"{name}: {text}"
        folded = _fold(name, _PIECE.findall(" " + text))
        if max(map(len, folded.split("\r\n"))) <= HEADER_LINE_MAX:
            return folded
    words = _encoded_words(text, first=HEADER_FOLD_AT - len(name) - 2)
    return _fold(name, [" " + word for word in words])


def _phrase(name, first):
    """The pieces of a display name: atoms as they are, a quoted string, or encoded words (the first of them at
    most `first` characters long) when it is not ASCII, looks like an encoded word or is too long for a line."""
    if not _needs_encoding(name) and len(name) < HEADER_LINE_MAX - PATH_MAX - 10:
        if _PHRASE.match(name):
            return _PIECE.findall(" " + name)
        if _QUOTABLE.match(name):
            return [' "' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return [" " + word for word in _encoded_words(name, first)]


def address_list(name, mailboxes):
    """From, To, Cc, Reply-To: `Name <a@b>, c@d`, folded between words and mailboxes."""
    pieces = []
    for index, mailbox in enumerate(mailboxes):
        comma = "," if index < len(mailboxes) - 1 else ""
        if mailbox.display_name:
            pieces.extend(_phrase(mailbox.display_name, HEADER_FOLD_AT - len(name) - 2 if index == 0 else _EW_MAX))
            pieces.append(f" <{mailbox.addr_spec}>{comma}")
        else:
            pieces.append(f" {mailbox.addr_spec}{comma}")
    return _fold(name, pieces)


def _parameter(name, value):
    """A MIME parameter on a line of its own: `;\\r\\n name="value"`, or RFC 2231 `name*0*=utf-8''…` continuations
    for a value that cannot be quoted in ASCII (or would not fit on one line)."""
    if _QUOTED_PARAMETER.match(value) and len(name) + len(value) + 4 <= HEADER_FOLD_AT:
        return f';\r\n {name}="{value}"'
    escaped = "".join(chr(b) if chr(b) in _ATTRIBUTE_CHARS else f"%{b:02X}" for b in value.encode())
    room = HEADER_FOLD_AT - len(name) - len(" *00*=utf-8'';")
    parts, start = [], 0
    while start < len(escaped):
        end = min(start + room, len(escaped))
        cut = escaped.rfind("%", end - 2, end)  # never cut a %XX escape in two
        end = cut if cut > start else end
        parts.append(escaped[start:end])
        start = end
    if len(parts) == 1:
        return f";\r\n {name}*=utf-8''{parts[0]}"
    charset = ["utf-8''"] + [""] * (len(parts) - 1)  # RFC 2231 4: the charset goes in the first segment only
    return "".join(f";\r\n {name}*{index}*={charset[index]}{part}" for index, part in enumerate(parts))


# ---------------------------------------------------------------------------------------------------------------------
# The writer: bodies
# ---------------------------------------------------------------------------------------------------------------------


def _text_part(octets, subtype):
    """Headers and body of a text/* part from `_body_octets`: 7bit when ASCII with lines of at most 78 octets, else
    quoted-printable or base64 (whichever is shorter: base64 for most non-Latin scripts). CRLF line breaks."""
    content_type = f'Content-Type: text/{subtype}; charset="utf-8"'
    ascii = octets.isascii()
    if ascii and max(map(len, octets.split(b"\n"))) <= LINE_SHOULD_MAX:
        return f"{content_type}\r\nContent-Transfer-Encoding: 7bit", octets.replace(b"\n", b"\r\n")
    quoted = _quoted_printable(octets)
    if not ascii:
        encoded = _base64_lines(octets.replace(b"\n", b"\r\n"))
        if len(encoded) < len(quoted):
            return f"{content_type}\r\nContent-Transfer-Encoding: base64", encoded
    return f"{content_type}\r\nContent-Transfer-Encoding: quoted-printable", quoted


def _quoted_printable(octets):
    """RFC 2045 quoted-printable of LF-separated text, with CRLF line breaks and lines of at most 76 characters.

    Text that needs no escape (printable ASCII and TAB, no "=", no whitespace before a line break) only gets soft
    line breaks, cut here; anything else goes through binascii's encoder (several times slower on long lines).
    """
    lines = octets.split(b"\n")
    lines.pop()  # after the final line break
    if octets.translate(None, _QP_LITERAL) or any(line.endswith((b" ", b"\t")) for line in lines):
        return binascii.b2a_qp(octets, istext=True).replace(b"\n", b"\r\n")
    out = [
        line if len(line) <= QP_LINE_MAX else b"=\r\n".join(line[i : i + QP_LINE_MAX - 1] for i in range(0, len(line),
                                                                                                   QP_LINE_MAX - 1))
        for line in lines
    ]  # fmt: skip
    return b"\r\n".join(out) + b"\r\n"


def _base64_lines(octets):
    encoded = base64.b64encode(octets)
    return b"".join(encoded[i : i + BASE64_LINE] + b"\r\n" for i in range(0, len(encoded), BASE64_LINE))


def _multipart(subtype, parts):
    """(headers, body) of a multipart/* entity from (headers, body) parts, with a boundary found in none of them."""
    boundary = f"=_{uuid.uuid4().hex}"
    marker = boundary.encode()
    if any(marker in body for _, body in parts):  # a 128-bit random string: only a hostile body could hold it
        return _multipart(subtype, parts)
    body = b"".join(b"--" + marker + b"\r\n" + head.encode() + b"\r\n\r\n" + content + b"\r\n" for head, content
                    in parts) + b"--" + marker + b"--\r\n"  # fmt: skip
    return f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"', body


def _attachment(attachment, field):
    """(headers, body) of an attachment part: `filename`, `content_type` (default application/octet-stream) and
    base64 `content`. Text attachments are sent base64 too, so they stay byte-exact."""
    if not isinstance(attachment, dict):
        raise ValidationError({field: "An attachment is an object with filename, content_type and content."})
    filename = header_text(attachment.get("filename"), f"{field}.filename", "The file name", FILENAME_MAX)
    if not filename.strip():
        raise ValidationError({f"{field}.filename": "A file name is required."})
    content_type = attachment.get("content_type") or "application/octet-stream"
    if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type):
        raise ValidationError({f"{field}.content_type": f"{content_type!r} is not a MIME type like text/csv."})
    try:
        content = base64.b64decode(attachment.get("content") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ValidationError({f"{field}.content": "The content is not valid base64."}) from None
    head = (f"Content-Type: {content_type.lower()}{_parameter('name', filename)}\r\n"
            f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment{_parameter('filename', filename)}")
    return head, _base64_lines(content)


# ---------------------------------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------------------------------


def parse_mailboxes(values, field):
    """A list of `"Name <a@b>"` or `"a@b"` strings → `Mailbox`es (ValidationError keyed `field`)."""
    if not isinstance(values, (list, tuple)):
        raise ValidationError({field: "A list of addresses is expected."})
    return [parse_mailbox(value, field) for value in values]


def build_message(*, sender, to=(), cc=(), reply_to=(), subject="", text="", html="", headers=None, attachments=(),
                  now=None):  # fmt: skip
    """Structured fields → `Content`. Bcc recipients are not given here: they never appear in the headers.

    `sender`, `to`, `cc` and `reply_to` are `Mailbox`es (`parse_mailbox`); `attachments` are dicts with
    `filename`, `content_type` and base64 `content`. The result has CRLF line endings, 7-bit headers folded or
    encoded within 998 octets (76 where they can fold), Date and Message-ID.
    """
    from_mailbox = sender
    subject = header_text(subject, "subject", "The subject", SUBJECT_MAX)
    headers = headers or {}
    if not isinstance(headers, dict):
        raise ValidationError({"headers": "Headers must be an object of name → value."})
    if len(headers) > CUSTOM_HEADERS_MAX:
        raise ValidationError({"headers": f"At most {CUSTOM_HEADERS_MAX} custom headers."})
    custom = [(name, check_header(name, value)) for name, value in headers.items()]
    text, html = _body_octets(text, "text"), _body_octets(html, "html")
    if not text and not html:
        raise ValidationError({"text": "Give a text or an html body (or both)."})
    if not isinstance(attachments or (), (list, tuple)):
        raise ValidationError({"attachments": "Attachments are a list."})
    files = [_attachment(attachment, f"attachments[{index}]") for index, attachment in enumerate(attachments or ())]

    message_id = f"<{uuid.uuid4().hex}@{from_mailbox.domain}>"
    lines = [address_list("From", [from_mailbox])]
    for name, mailboxes in (("To", to), ("Cc", cc), ("Reply-To", reply_to)):
        if mailboxes:
            lines.append(address_list(name, mailboxes))
    lines.append(unstructured("Subject", subject))
    lines.append(f"Date: {_date(now or timezone.now())}")
    lines.append(f"Message-ID: {message_id}")
    lines.extend(unstructured(name, value) for name, value in custom)
    lines.append("MIME-Version: 1.0")

    parts = [_text_part(text, "plain")] if text else []
    if html:
        parts.append(_text_part(html, "html"))
    body_head, body = _multipart("alternative", parts) if len(parts) > 1 else parts[0]
    if files:
        body_head, body = _multipart("mixed", [(body_head, body), *files])
    lines.append(body_head)
    data = "\r\n".join(lines).encode("ascii") + b"\r\n\r\n" + body
    return Content(data=data, sender=from_mailbox, subject=subject[:255], from_header=str(from_mailbox)[:320],
                   message_id=message_id)  # fmt: skip


def normalize_raw(data, *, field="raw", now=None):
    """A raw RFC 5322 message → `Content` (bytes with CRLF line endings, Date and Message-ID present, Bcc removed).

    Refuses NUL bytes, lines over 998 octets, a missing or unparsable From, and a header section that does
    not end (no blank line before the body is fine: a message may have no body).
    """
    if isinstance(data, str):
        if _SURROGATE.search(data):
            raise ValidationError({field: "The message contains unpaired surrogates (not characters)."})
        data = data.encode("utf-8")
    if b"\x00" in data:
        raise ValidationError({field: "The message contains NUL bytes."})
    # One line-ending convention on the way out: every CR, LF or CRLF becomes CRLF.
    lines = _LINE_BREAK_BYTES.split(data)
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
    from_mailbox = parse_mailbox(addresses[0].addr_spec, "from")
    extra = []
    if headers.get("Date") is None:
        extra.append(f"Date: {_date(now or timezone.now())}".encode())
    message_id = _summary(headers, "Message-ID")
    if not message_id:
        message_id = f"<{uuid.uuid4().hex}@{from_mailbox.domain}>"
        extra.append(f"Message-ID: {message_id}".encode())
    out = b"\r\n".join(kept + extra) + b"\r\n\r\n" + b"\r\n".join(body_lines)
    if body_lines:
        out += b"\r\n"
    return Content(data=out, sender=from_mailbox, subject=_summary(headers, "Subject")[:255],
                   from_header=_summary(headers, "From")[:320], message_id=message_id[:255])  # fmt: skip


@functools.lru_cache(maxsize=4)
def _date(now):
    """The Date header's value (RFC 5322 3.3) for `now`: the messages of one request share it."""
    return format_datetime(now)


def _summary(headers, name):
    """A header's decoded text for lists ("" when it is missing or does not parse)."""
    try:
        return str(headers.get(name) or "")
    except Exception:
        return ""
