"""
Campaign templates: Jinja2 in its `SandboxedEnvironment`, compiled once per content, rendered per recipient.

Tenants write the templates, so they must not reach Python objects, files or settings: the sandbox refuses
attributes that start with an underscore and unsafe callables (`''.__class__.__mro__`, `cycler.__init__`),
ranges are capped, and the only context is the contact (`email`, `name`, `attributes`), the campaign's name and
`unsubscribe_url`. A missing variable renders empty (`CampaignUndefined`: `contact.attributes.city` of a contact
without that field is ""), so `{{ contact.name | default("there") }}` works for contacts without a name.

`render_message()` builds the RFC 5322 bytes by hand, not with the `email` package: it runs in the delivery worker
for every recipient, and assembling parts from strings costs a fraction of what `EmailMessage` does. The result has
CRLF line endings, 7bit or base64 parts (lines ≤ 998), RFC 2047 headers where needed, and the one-click
unsubscribe headers (RFC 8058) that DKIM then signs.
"""

import binascii
import html as html_lib
import re
import secrets
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr
from html.parser import HTMLParser
from urllib.parse import quote

from django.core.exceptions import ValidationError
from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from ..constants import HEADER_LINE_MAX, SUBJECT_MAX, TEST_SUBJECT_PREFIX
from ..mime import parse_mailbox
from ..models import Contact
from . import tokens

MAX_RANGE = 1000  # longest range() a template may loop over
COMPILED_CACHE_SIZE = 256  # compiled contents kept per worker process
BASE64_LINE = 76  # characters per line of a base64 part (RFC 2045)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_HREF = re.compile(r'(<a\b[^>]*?\bhref\s*=\s*)(["\'])(https?://[^"\']+)\2', re.IGNORECASE)
SAMPLE_CONTACT = {"email": "sample@example.com", "name": "Sample Contact", "attributes": {}}


class CampaignUndefined(ChainableUndefined):
    """A missing value renders empty (also down a chain: `contact.attributes.city`); a value the sandbox refused
    (`''.__class__`) raises its SecurityError when used, so that a template reaching for one fails to save."""

    __slots__ = ()

    def _refused(self):
        return isinstance(self._undefined_exception, type) and issubclass(self._undefined_exception, SecurityError)

    def __str__(self):
        if self._refused():
            self._fail_with_undefined_error()
        return ""

    def __iter__(self):
        if self._refused():
            self._fail_with_undefined_error()
        return iter(())

    def __getattr__(self, name):
        if name[:2] == "__":
            raise AttributeError(name)
        if self._refused():
            self._fail_with_undefined_error()
        return self


class CampaignSandbox(SandboxedEnvironment):
    """The sandbox with a tighter range() cap (the default allows 100,000 items per loop)."""

    def __init__(self, **options):
        super().__init__(undefined=CampaignUndefined, keep_trailing_newline=True, **options)
        self.globals["range"] = self._range

    @staticmethod
    def _range(*args):
        values = range(*args)
        if len(values) > MAX_RANGE:
            raise SecurityError(f"range() is limited to {MAX_RANGE} items in campaign templates.")
        return values


HTML_ENV = CampaignSandbox(autoescape=True)
TEXT_ENV = CampaignSandbox(autoescape=False)


# ---------------------------------------------------------------------------------------------------------------------
# Text from HTML
# ---------------------------------------------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """HTML → readable plain text: blocks become lines, links "text (url)", scripts and styles dropped."""

    BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "hr"}
    SKIP = {"script", "style", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip, self.links = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote"):
            self.parts.append("\n")
        if tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.startswith(("#", "mailto:")):
                self.parts.append(f" ({href})")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(source):
    """A plain-text version of an HTML template (Jinja expressions kept as they are, to be rendered as text)."""
    parser = _TextExtractor()
    parser.feed(source or "")
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text + "\n" if text else ""


# ---------------------------------------------------------------------------------------------------------------------
# Validation (on save) and preview
# ---------------------------------------------------------------------------------------------------------------------


def _compile(env, source, field):
    try:
        return env.from_string(source or "")
    except TemplateSyntaxError as exc:
        raise ValidationError({field: f"Template error on line {exc.lineno}: {exc.message}"}) from None


def validate_templates(*, subject, html, text):
    """Compile the three templates and render them once for a sample contact: a syntax error or a sandbox
    violation is a field error (ValidationError keyed subject / html / text). Returns nothing."""
    compiled = {
        "subject": _compile(TEXT_ENV, subject, "subject"),
        "html": _compile(HTML_ENV, html, "html"),
        "text": _compile(TEXT_ENV, text or html_to_text(html), "text" if text else "html"),
    }
    context = template_context(SAMPLE_CONTACT, campaign_name="Sample", unsubscribe_url="https://example.com/u/x")
    for field, template in compiled.items():
        try:
            template.render(context)
        except SecurityError as exc:
            raise ValidationError({field: f"Not allowed in a template: {exc}"}) from None
        except TemplateError as exc:
            raise ValidationError({field: f"Template error: {exc}"}) from None
        except Exception as exc:  # e.g. {{ 1 / 0 }}: evaluated with the sample contact
            raise ValidationError({field: f"Template error: {type(exc).__name__}: {exc}"}) from None


def template_context(contact, *, campaign_name, unsubscribe_url):
    return {"contact": contact, "campaign": {"name": campaign_name}, "unsubscribe_url": unsubscribe_url}


def preview(campaign, contact):
    """(subject, html, text) of `campaign` rendered for `contact` (a dict as `Contact.template_context()`)."""
    compiled = compile_campaign(campaign, is_test=False)
    context = template_context(contact, campaign_name=campaign.name, unsubscribe_url=tokens.public_url("/u/preview"))
    return (
        _one_line(compiled.subject.render(context)),
        compiled.html.render(context) if compiled.html is not None else "",
        compiled.text.render(context),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Rendering in the delivery worker
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class CompiledCampaign:
    """A campaign's templates compiled, and the parts of its messages that are the same for every recipient."""

    name: str
    subject: object
    html: object  # None when the campaign has no HTML part
    text: object
    from_value: str  # the encoded From header value
    reply_to_value: str
    domain: str
    return_path_host: str
    track_opens: bool
    track_clicks: bool
    is_test: bool
    feedback_id: str


_compiled = {}  # content pk -> CompiledCampaign


def compile_campaign(campaign, *, is_test):
    """Compile a campaign's templates (raises ValidationError on a template that no longer compiles)."""
    sender = parse_mailbox(campaign.from_header, "from")
    reply_to = parse_mailbox(campaign.reply_to, "reply_to") if campaign.reply_to else None
    domain = campaign.sending_domain
    return CompiledCampaign(
        name=campaign.name,
        subject=_compile(TEXT_ENV, campaign.subject, "subject"),
        html=_compile(HTML_ENV, campaign.html, "html") if campaign.html else None,
        text=_compile(TEXT_ENV, campaign.text or html_to_text(campaign.html), "text"),
        from_value=_address(sender.display_name, sender.addr_spec),
        reply_to_value=_address(reply_to.display_name, reply_to.addr_spec) if reply_to else "",
        domain=domain.name,
        return_path_host=domain.return_path_host,
        track_opens=campaign.track_opens,
        track_clicks=campaign.track_clicks,
        is_test=is_test,
        feedback_id=f"{campaign.uuid.hex[:16]}:{campaign.tenant_id}:campaign:deliveryhub",
    )


def compiled_for(content):
    """The compiled campaign of a content row (cached per worker process; a content never changes)."""
    found = _compiled.get(content.pk)
    if found is None:
        if len(_compiled) >= COMPILED_CACHE_SIZE:
            _compiled.clear()
        found = _compiled[content.pk] = compile_campaign(content.campaign, is_test=content.is_test)
    return found


def _one_line(value):
    return _CONTROL.sub(" ", value).strip()[:SUBJECT_MAX]


def _address(name, addr):
    name = _one_line(name or "")
    return formataddr((name, addr), charset="utf-8") if name else addr


def _header(name, value):
    """`Name: value` for a free-text header: as is when short ASCII, else RFC 2047 encoded and folded."""
    if value.isascii() and len(value) + len(name) < 76:
        return f"{name}: {value}"
    return f"{name}: " + Header(value, "utf-8", maxlinelen=76, header_name=name).encode(linesep="\r\n")


def _part(content_type, text):
    """A body part: 7bit as it is when ASCII with lines within RFC 5322's 998 octets, else base64 of the UTF-8
    (quoted-printable costs three times more CPU, and this runs for every recipient)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii() and max(map(len, text.split("\n"))) <= HEADER_LINE_MAX:
        head = f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
        return (head + text.replace("\n", "\r\n")).encode("ascii")
    data = binascii.b2a_base64(text.encode("utf-8"), newline=False)
    lines = b"\r\n".join([data[i : i + BASE64_LINE] for i in range(0, len(data), BASE64_LINE)])
    head = f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    return head.encode("ascii") + lines


def _track_links(html, token):
    unsubscribe = tokens.unsubscribe_url(token)

    def replace(match):
        url = html_lib.unescape(match.group(3))
        if url == unsubscribe:
            return match.group(0)
        signature = tokens.click_signature(token, url)
        target = tokens.public_url(f"/t/c/{token}/{signature}?u={quote(url, safe='')}")
        return f"{match.group(1)}{match.group(2)}{target}{match.group(2)}"

    return _HREF.sub(replace, html)


def _open_pixel(html, token):
    pixel = f'<img src="{tokens.public_url(f"/t/o/{token}.gif")}" width="1" height="1" alt="" style="display:none">'
    end = html.lower().rfind("</body")
    return html + pixel if end < 0 else html[:end] + pixel + html[end:]


def render_message(compiled, *, message_uuid, rcpt_to, contact, now):
    """The message of one recipient, ready for DKIM signing: bytes with CRLF line endings.

    `contact` is the template's `contact` (see `Contact.template_context()`); `rcpt_to` the envelope recipient.
    """
    token = tokens.message_token(message_uuid)
    unsubscribe_url = tokens.unsubscribe_url(token)
    context = template_context(contact, campaign_name=compiled.name, unsubscribe_url=unsubscribe_url)
    subject = _one_line(compiled.subject.render(context))
    if compiled.is_test:
        subject = TEST_SUBJECT_PREFIX + subject
    text = compiled.text.render(context)
    html = compiled.html.render(context) if compiled.html is not None else None
    if html is not None and compiled.track_clicks and not compiled.is_test:
        html = _track_links(html, token)
    if html is not None and compiled.track_opens and not compiled.is_test:
        html = _open_pixel(html, token)
    mailto = tokens.unsubscribe_address(token, compiled.return_path_host)
    headers = [
        f"From: {compiled.from_value}",
        f"To: {_address(contact.get('name', ''), rcpt_to)}",
        _header("Subject", subject),
        f"Date: {format_datetime(now)}",
        f"Message-ID: <{message_uuid.hex}@{compiled.domain}>",
        "MIME-Version: 1.0",
    ]
    if compiled.reply_to_value:
        headers.append(f"Reply-To: {compiled.reply_to_value}")
    headers += [
        f"List-Unsubscribe: <{unsubscribe_url}>, <mailto:{mailto}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        f"Feedback-ID: {compiled.feedback_id}",
    ]
    text_part = _part("text/plain", text)
    if html is None:
        return "\r\n".join(headers).encode("ascii") + b"\r\n" + text_part + b"\r\n"
    boundary = f"=_dh_{secrets.token_hex(12)}"
    headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    html_part = _part("text/html", html)
    marker = f"\r\n--{boundary}\r\n".encode("ascii")
    return b"".join(
        [
            "\r\n".join(headers).encode("ascii"),
            b"\r\n\r\nThis is a multipart message in MIME format.\r\n",
            marker[2:],
            text_part,
            marker,
            html_part,
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
    )


# ---------------------------------------------------------------------------------------------------------------------
# What the delivery worker's `render` step calls
# ---------------------------------------------------------------------------------------------------------------------


def contact_contexts(messages):
    """{contact id: the template's `contact`} of a batch's campaign messages, in one query."""
    ids = {message.contact_id for message in messages if message.contact_id}
    rows = Contact.objects.filter(id__in=ids).values_list("id", "email", "name", "attributes")
    contexts = {}
    for pk, email, name, attributes in rows:
        context = {"email": email, "attributes": attributes or {}}
        if name:
            context["name"] = name
        contexts[pk] = context
    return contexts


def render_for(message, contexts, now):
    """The unsigned bytes of one campaign message (its content's campaign, its contact; a test send without a contact
    gets an empty one)."""
    contact = contexts.get(message.contact_id) or {"email": message.rcpt_to, "attributes": {}}
    return render_message(
        compiled_for(message.content), message_uuid=message.uuid, rcpt_to=message.rcpt_to, contact=contact, now=now
    )
