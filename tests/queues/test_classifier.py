"""The reply classifier: the whole shared corpus of real-world replies, plus the engine's own cases and admin rules."""

import csv
from pathlib import Path

import pytest

from queues.choices import RuleAction
from queues.delivery.classifier import Rule, classify, classify_result, default_rules, split_enhanced
from queues.delivery.result import END_OF_DATA, RCPT_TO, SendResult

# A copy of shared/data/smtp-replies.tsv (real-world replies from large receivers), kept in the repository so
# the test never depends on what lies beside a checkout.
CORPUS = Path(__file__).resolve().parent / "data" / "smtp-replies.tsv"


def _corpus():
    with CORPUS.open(encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if row and row[0][:1] != "#"]
    assert rows[0] == ["code", "text", "category", "action"]
    return [
        pytest.param(int(code), text, category, action, id=f"{code} {text[:50]}")
        for code, text, category, action in rows[1:]
    ]


@pytest.mark.parametrize(("code", "text", "category", "action"), _corpus())
def test_corpus(code, text, category, action):
    result = classify(code, None, text)
    assert (result.category, result.action) == (category, action)


def test_corpus_is_not_empty():
    assert len(_corpus()) >= 39


def test_actions_are_the_model_vocabulary():
    assert {rule.action for rule in default_rules()} <= set(RuleAction.values)


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "category", "action", "status"),
    [
        (250, "2.0.0", "OK: queued as 12345", "delivered", "deliver", "delivered"),
        (550, "5.1.1", "User unknown", "invalid_recipient", "bounce+suppress", "bounced"),
        (550, "5.7.1", "Access denied", "policy", "bounce", "bounced"),  # about us, not the recipient: no suppression
        (552, "5.2.2", "Mailbox full", "mailbox_full", "defer", "deferred"),
        (552, None, "Requested mail action aborted: exceeded storage allocation", "mailbox_full", "defer", "deferred"),
        (552, None, "Message size exceeds maximum permitted", "message_too_large", "bounce", "bounced"),
        (421, "4.7.0", "Try again later, closing connection", "transient", "defer", "deferred"),
        (450, "4.2.0", "Greylisted for 300 seconds", "greylisted", "defer", "deferred"),
        # qmail's wording of an unknown recipient, with no enhanced code: the text is the evidence.
        (554, None, "Sorry, no mailbox here by that name", "invalid_recipient", "bounce+suppress", "bounced"),
        (
            None,
            "5.1.10",
            "Recipient address has null MX: example.test accepts no mail",
            "bad_domain",
            "bounce+suppress",
            "bounced",
        ),
        (None, "5.1.2", "Host or domain name not found", "bad_domain", "bounce+suppress", "bounced"),
        (None, "4.4.3", "DNS lookup failed: SERVFAIL", "transient", "defer", "deferred"),
        (
            None,
            "4.7.10",
            "TLS is required but mx.example.test does not offer STARTTLS",
            "tls_required",
            "defer",
            "deferred",
        ),
        (535, "5.7.8", "Authentication credentials invalid", "sender_config", "defer", "deferred"),
        (None, None, "something odd happened", "unknown", "defer", "deferred"),
    ],
)
def test_engine_cases(code, enhanced, text, category, action, status):
    result = classify(code, enhanced, text)
    assert (result.category, result.action, result.status) == (category, action, status)


def test_connection_errors_defer():
    result = classify(
        None, None, "connect to mx.example.test[192.0.2.1]:25 failed: Connection refused", connect_error=True
    )
    assert (result.category, result.action, result.status) == ("connection_error", "defer", "deferred")


def test_retry_hint_is_returned():
    assert classify(450, "4.2.0", "Greylisted, please try again in 5 minutes").retry_after == 300
    assert classify(550, "5.1.1", "User unknown").retry_after is None


def test_split_enhanced():
    assert split_enhanced("5.1.1 User unknown") == ("5.1.1", "User unknown")
    assert split_enhanced("User unknown") == (None, "User unknown")
    assert split_enhanced("5.1.10 RESOLVER") == ("5.1.10", "RESOLVER")


class _AdminRule:
    """Anything with BounceRule's attributes works as an extra rule."""

    def __init__(self, **fields):
        self.__dict__.update({"priority": 100, "code": "", "enhanced": "", "text": "", **fields})


def test_extra_rules_take_precedence_in_order():
    rules = [
        _AdminRule(enhanced="5.7.1", text="acme-block", category="reputation_block", action="bounce"),
        _AdminRule(code="5xx", enhanced="5.7.*", category="policy", action="defer"),
    ]
    assert classify(550, "5.7.1", "blocked by acme-block list", extra_rules=rules).category == "reputation_block"
    assert classify(550, "5.7.1", "Access denied", extra_rules=rules).action == "defer"
    assert classify(550, "5.1.1", "User unknown", extra_rules=rules).action == "bounce+suppress"


def test_classify_result_applies_admin_rules_first():
    result = SendResult(550, "5.1.1", "User unknown", stage=RCPT_TO, mx_host="mx.example.test")
    assert classify_result(result).action == "bounce+suppress"
    rules = [_AdminRule(code="550", text="unknown", category="invalid_recipient", action="bounce")]
    verdict = classify_result(result, rules=rules)
    assert (verdict.status, verdict.action) == ("bounced", "bounce")


def test_classify_result_honours_provider_rules():
    """Gmail's 421 4.7.0 "Try again later, closing connection" is a throttle at Gmail, a plain deferral elsewhere."""
    result = SendResult(421, "4.7.0", "Try again later, closing connection.", stage=RCPT_TO)
    assert classify_result(result, provider="google").action == "defer+slow"
    assert classify_result(result, provider="other").action == "defer"


def test_delivered_only_on_a_2xx_to_the_end_of_data():
    """A 2xx to anything but the end of the message's own DATA (RCPT's 250 read where 354 was due) is out of step."""
    assert classify_result(SendResult(250, "2.0.0", "OK queued", stage=END_OF_DATA)).action == "deliver"
    verdict = classify_result(SendResult(250, "2.1.5", "OK", stage="DATA"))
    assert (verdict.category, verdict.action) == ("protocol_error", "defer")


def test_a_connection_lost_after_the_data_defers_as_unknown():
    result = SendResult(None, None, "connection lost at end of data", stage=END_OF_DATA, connect_error=True,
                        outcome_unknown=True)  # fmt: skip
    assert (classify_result(result).category, classify_result(result).action) == ("connection_error", "defer")


@pytest.mark.parametrize(
    "fields",
    [{"code": "55"}, {"enhanced": "5.7.a"}, {"text": "("}, {"action": "explode"}],
)
def test_bad_rules_are_refused(fields):
    values = {"priority": 1, "code": "", "enhanced": "", "text": "", "category": "x", "action": "bounce", **fields}
    with pytest.raises((ValueError, Exception)):
        Rule(**values)


def test_enhanced_patterns():
    rule = Rule(1, "5xx", "5.7.*", "", "policy", "bounce")
    assert rule.matches("550", "5.7.1", "")
    assert rule.matches("554", "5.7.509", "")
    assert not rule.matches("550", "5.1.1", "")
    assert not rule.matches("450", "5.7.1", "")
    exact = Rule(1, "", "5.1.2", "", "bad_domain", "bounce")
    assert not exact.matches("550", "5.1.20", "")


def test_a_2xx_reply_is_delivered_whatever_its_text():
    """Rules matching text alone (an admin's "blocked", the corpus's "spam") must not turn an accepted message into a
    bounce: the receiver took it."""
    rules = [_AdminRule(text="blocked|spam", category="reputation_block", action="bounce")]
    for text in ("2.0.0 Ok: queued as 4F2 (not blocked)", "Message accepted, spam score 0.1"):
        outcome = classify(250, None, text, extra_rules=rules)
        assert (outcome.category, outcome.action) == ("delivered", "deliver")
    verdict = classify_result(SendResult(250, "2.0.0", "queued, not blocked", stage=END_OF_DATA), rules=rules)
    assert (verdict.status, verdict.action) == ("delivered", "deliver")
