"""One decision, made once: what an SMTP reply means (category) and what to do about it (action).

The rules are data: `queues/data/bounce_rules.tsv` holds the defaults (loaded once, cached); admins' `BounceRule`
rows are passed in as `extra_rules` and tried first, in the order given. A rule may be limited to one mailbox provider
(google, microsoft, yahoo, other: `ippools.providers.provider_for`); `classify(..., provider=...)` says whose reply it
is. `classify_result()` is the engine's one call per attempt: the sender hands back the raw reply, the processor
decides with the defaults and the admins' rules together. The vocabulary of categories (grouped by RFC 3463 subject)
and actions (`queues.choices.RuleAction`, the one spelling the classifier, the processor and `BounceRule` share):

    X.1 addressing: invalid_recipient, bad_domain, sender_config      X.2 mailbox: inactive_mailbox, mailbox_full,
    message_too_large      X.3 mail system: system_error      X.4 network/routing: routing, expired, transient
    X.5 protocol: protocol_error      X.6 content: content_error      X.7 security/policy: policy, reputation_block,
    blocklisted, authentication, spam_content, virus, rate_limited, greylisted, tls_required
    and: delivered, connection_error, unknown
    actions: deliver, defer, defer+slow, bounce, bounce+suppress

Only evidence that the recipient does not exist (5.1.1-style codes, 5.2.1 disabled mailboxes, or text saying so)
bounces and suppresses; a 5.7.x block bounces without suppressing (it says something about us, not the recipient);
a full mailbox defers; rate limits defer and slow the (source IP, provider) pair. A reply no wording rule knows falls
back on its enhanced code's class and subject, then on its basic code, and an unknown 5xx bounces without suppressing.
Rules match a normalised text: the lines of a multi-line reply joined, their repeated "550-5.1.1" prefixes dropped; a
qmail-style "(#5.1.1)" stands for the enhanced code when the reply has none in front.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ippools.choices import Provider

from ..choices import AttemptStatus, RuleAction
from .backoff import parse_retry_hint
from .result import SendResult

RULES_PATH = Path(__file__).resolve().parent.parent / "data" / "bounce_rules.tsv"

STATUS_FOR_ACTION = {
    RuleAction.DELIVER: AttemptStatus.DELIVERED,
    RuleAction.DEFER: AttemptStatus.DEFERRED,
    RuleAction.DEFER_SLOW: AttemptStatus.DEFERRED,
    RuleAction.BOUNCE: AttemptStatus.BOUNCED,
    RuleAction.BOUNCE_SUPPRESS: AttemptStatus.BOUNCED,
}

# Categories the engine itself produces (the rest come from the rules file).
DELIVERED = "delivered"
CONNECTION_ERROR = "connection_error"
PROTOCOL_ERROR = "protocol_error"
UNKNOWN = "unknown"

ENHANCED_RE = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})(?=\s|$)")
# "550-5.1.1 " / "5.1.1 " repeated at the start of each line of a multi-line reply (or inside a folded DSN field).
_CONTINUATION_RE = re.compile(
    r"(?:(?<=\s)|^)(?:[245]\d\d[ -])?[245]\.\d{1,3}\.\d{1,3}(?=\s)\s*|(?:(?<=\s)|^)[245]\d\d-"
)
_TRAILING_ENHANCED_RE = re.compile(r"\(?#([245]\.\d{1,3}\.\d{1,3})\b")
_CODE_PATTERN_RE = re.compile(r"^[2-5][0-9x]{2}$")
_ENHANCED_PATTERN_RE = re.compile(r"^[245x](\.(\d{1,3}|\*)){0,2}$")


class Classification(NamedTuple):
    """What a reply means: `category` (for humans and reports), `action` (for the engine), `retry_after` (seconds
    asked for in the reply text, or None)."""

    category: str
    action: RuleAction
    retry_after: int | None

    @property
    def status(self) -> AttemptStatus:
        """delivered, deferred or bounced."""
        return STATUS_FOR_ACTION[self.action]


@dataclass(frozen=True)
class Rule:
    """One classification rule; empty patterns match anything."""

    priority: int
    code: str  # "550", "5xx" or ""
    enhanced: str  # "5.1.1", "5.7.*" or ""
    text: str  # case-insensitive regular expression, or ""
    category: str
    action: str
    provider: str = ""  # google, microsoft, yahoo, other, or "" (any)

    def __post_init__(self):
        if self.code and not _CODE_PATTERN_RE.match(self.code):
            raise ValueError(f"bad code pattern {self.code!r}")
        if self.enhanced and not _ENHANCED_PATTERN_RE.match(self.enhanced):
            raise ValueError(f"bad enhanced status pattern {self.enhanced!r}")
        if self.action not in RuleAction.values:
            raise ValueError(f"unknown action {self.action!r}")
        if self.provider and self.provider not in Provider.values:
            raise ValueError(f"unknown provider {self.provider!r}")
        _compiled(self.text)  # fail early on a bad regular expression

    @classmethod
    def from_object(cls, obj) -> Rule:
        """A Rule from anything with the same attributes (a `BounceRule` row, a Rule)."""
        if isinstance(obj, Rule):
            return obj
        return _rule_from_fields(
            int(obj.priority or 0), obj.code or "", obj.enhanced or "", obj.text or "", obj.category, obj.action
        )

    def matches(self, code_text: str, enhanced: str, text: str, provider: str | None = None) -> bool:
        if self.provider and self.provider != provider:
            return False
        if self.code and not _match_code(self.code, code_text):
            return False
        if self.enhanced and not _match_enhanced(self.enhanced, enhanced):
            return False
        return not self.text or _compiled(self.text).search(text) is not None


@functools.lru_cache(maxsize=1024)
def _rule_from_fields(priority, code, enhanced, text, category, action, provider="") -> Rule:
    return Rule(
        priority, code.strip().lower(), enhanced.strip(), text, category.strip(), RuleAction(action.strip()),
        provider.strip(),
    )  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def _match_code(pattern: str, code_text: str) -> bool:
    if len(code_text) != 3:
        return False
    return all(p == "x" or p == c for p, c in zip(pattern, code_text, strict=True))


def _match_enhanced(pattern: str, enhanced: str) -> bool:
    if not enhanced:
        return False
    parts, wanted = enhanced.split("."), pattern.split(".")
    for index, want in enumerate(wanted):
        if want == "*":
            return True
        if index >= len(parts) or (want != "x" and want != parts[index]):
            return False
    return len(parts) == len(wanted)


@functools.cache
def default_rules() -> tuple[Rule, ...]:
    """The rules of `queues/data/bounce_rules.tsv`, sorted by priority (stable: file order breaks ties)."""
    rules = []
    with RULES_PATH.open(newline="", encoding="utf-8") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row or row[0].startswith("#") or row[0] == "priority":
                continue
            if len(row) not in (6, 7):
                raise ValueError(f"{RULES_PATH}:{line_number}: expected 6 or 7 tab-separated columns, got {len(row)}")
            rules.append(_rule_from_fields(int(row[0]), *row[1:]))
    return tuple(sorted(rules, key=lambda rule: rule.priority))


def split_enhanced(text: str) -> tuple[str | None, str]:
    """Split a leading enhanced status code off a reply text: "5.1.1 User unknown" → ("5.1.1", "User unknown")."""
    match = ENHANCED_RE.match(text or "")
    if match is None:
        return None, (text or "").strip()
    return match.group(1), text[match.end() :].strip()


def normalise_text(text: str) -> str:
    """The text rules match: lines joined with spaces, repeated enhanced-code prefixes dropped, spaces collapsed."""
    return " ".join(_CONTINUATION_RE.sub(" ", text or "").split())


def classify(
    code: int | None,
    enhanced: str | None,
    text: str,
    *,
    connect_error: bool = False,
    extra_rules=None,
    provider: str | None = None,
) -> Classification:
    """Classify a reply (code, enhanced status code, text) into a category and an action.

    When `enhanced` is None and the text starts with one, it is taken from the text (or from a qmail-style "(#5.1.1)"
    in it). `connect_error` (no reply: the connection was refused, timed out or dropped) defers. `extra_rules`
    (BounceRule rows or Rules) are tried first, in the order given. `provider` (google, microsoft, yahoo, other) lets
    provider-specific rules match. A reply no rule matches defers when it has no 5xx code and bounces otherwise,
    never suppressing the recipient.
    """
    text = text or ""
    if enhanced is None:
        enhanced, text = split_enhanced(text)
    retry_after = parse_retry_hint(text)
    text = normalise_text(text)
    if not enhanced:
        trailing = _TRAILING_ENHANCED_RE.search(text)
        enhanced = trailing.group(1) if trailing else ""
    if connect_error and code is None:
        return Classification(CONNECTION_ERROR, RuleAction.DEFER, retry_after)
    if code is not None:
        code_text = str(code)
    elif enhanced:
        code_text = enhanced[0] + "xx"  # no reply (DNS, connection): the enhanced code's class decides
    else:
        code_text = ""
    if code_text.startswith("2"):  # the receiver took it: no rule (text alone may match) makes that a failure
        return Classification(DELIVERED, RuleAction.DELIVER, None)
    for rule in _iter_rules(extra_rules):
        if rule.matches(code_text, enhanced, text, provider):
            return Classification(rule.category, rule.action, retry_after)
    return Classification(UNKNOWN, RuleAction.BOUNCE if code_text.startswith("5") else RuleAction.DEFER, retry_after)


def _iter_rules(extra_rules):
    if extra_rules:
        for obj in extra_rules:
            yield Rule.from_object(obj)
    yield from default_rules()


def classify_result(result: SendResult, *, rules=None, provider: str | None = None) -> Classification:
    """The one decision on an attempt: what the sender handed back (`SendResult`, unclassified) means.

    `rules`: the admins' `BounceRule`s, tenant rules first, then platform rules (tried before the defaults);
    `provider`: the destination's mailbox provider, for provider-specific rules. Delivered only when the receiver
    answered the end of the message's own DATA with a 2xx; a 2xx to anything else is a reply out of step (a
    protocol error: defer, never a delivery).
    """
    if result.accepted:
        return Classification(DELIVERED, RuleAction.DELIVER, None)
    if result.code is not None and 200 <= result.code < 300:
        return Classification(PROTOCOL_ERROR, RuleAction.DEFER, None)
    verdict = classify(result.code, result.enhanced, result.text, connect_error=result.connect_error,
                       extra_rules=rules, provider=provider)  # fmt: skip
    if result.retry_after and result.retry_after > (verdict.retry_after or 0):
        return verdict._replace(retry_after=result.retry_after)
    return verdict
