"""DKIM signing through OpenSSL, verified by dkimpy against keys published on a real (loopback) DNS server."""

import dkim
import pytest

from deliveryhub import dns as dnsq
from deliveryhub.testing.dns import txt_strings
from queues.delivery.bench_sign import sample_message
from queues.delivery.dkim import (
    ED25519_SHA256,
    RSA_SHA256,
    DkimSigner,
    body_hash,
    generate_private_key,
    public_key_txt,
    relaxed_body,
    relaxed_header,
    sign_message,
)

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@example.net, carol@example.net\r\n"
    b"Cc: dave@example.net\r\n"
    b"Subject: Quarterly   numbers\r\n"
    b"\tfolded onto a second line\r\n"
    b"Date: Sat, 28 Nov 2026 01:00:00 +0000\r\n"
    b"Message-ID: <1234@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"List-Unsubscribe: <https://example.test/u/1>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"X-Not-Signed: whatever\r\n"
    b"\r\n"
    b"Hello Bob,  \t\r\n"
    b".leading dot and  spaces\r\n" + "caf\u00e9 \u2603\r\n".encode() + b"\r\n\r\n"
)

KEYS = {algorithm: generate_private_key(algorithm) for algorithm in (RSA_SHA256, ED25519_SHA256)}


@pytest.fixture
def published(dns_server, settings):
    """Publish both keys (selectors rsa1 and ed1) in example.test; return a dkimpy dnsfunc reading that server."""
    settings.DNS_RESOLVERS = [dns_server.address]
    dns_server.set_zone(
        "example.test",
        f"""
        rsa1._domainkey 300 IN TXT {txt_strings(public_key_txt(KEYS[RSA_SHA256], RSA_SHA256))}
        ed1._domainkey  300 IN TXT {txt_strings(public_key_txt(KEYS[ED25519_SHA256], ED25519_SHA256))}
        """,
    )

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        result = dnsq.query(name, "TXT")
        if not result.ok:
            return None
        return b"".join(b"".join(rdata.strings) for rdata in result.answer)

    return dnsfunc


def _signer(algorithm):
    return DkimSigner("example.test", "rsa1" if algorithm == RSA_SHA256 else "ed1", KEYS[algorithm], algorithm)


@pytest.mark.parametrize("algorithm", [RSA_SHA256, ED25519_SHA256])
def test_signature_verifies(published, algorithm):
    signed = sign_message(MESSAGE, [_signer(algorithm)])
    assert signed.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode())
    assert signed.endswith(MESSAGE)
    assert dkim.verify(signed, dnsfunc=published)


@pytest.mark.parametrize("algorithm", [RSA_SHA256, ED25519_SHA256])
def test_signed_header_list(algorithm):
    header = _signer(algorithm).sign(MESSAGE).decode()
    unfolded = header.replace("\r\n\t", " ")
    h = unfolded.split(" h=")[1].split(";")[0].replace(" ", "")
    assert h.split(":") == [
        "from",
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ]
    assert "x-not-signed" not in h
    assert all(len(line) <= 78 for line in header.split("\r\n"))
    assert header.endswith("\r\n") and "c=relaxed/relaxed" in header and "d=example.test" in header


@pytest.mark.parametrize("algorithm", [RSA_SHA256, ED25519_SHA256])
def test_oversigned_from_breaks_on_an_added_from(published, algorithm):
    signed = sign_message(MESSAGE, [_signer(algorithm)])
    signature, rest = signed.split(b"\r\nFrom:", 1)
    assert dkim.verify(signed, dnsfunc=published)
    assert not dkim.verify(signature + b"\r\nFrom: Mallory <m@evil.test>\r\nFrom:" + rest, dnsfunc=published)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"Quarterly", b"Quarterly!"),
        lambda m: m.replace(b"Hello Bob", b"Hello Eve"),
        lambda m: m.replace(b"Subject:", b"Subject: Re:"),
    ],
)
def test_tampering_breaks_the_signature(published, tamper):
    signed = sign_message(MESSAGE, [_signer(RSA_SHA256)])
    assert not dkim.verify(tamper(signed), dnsfunc=published)


def test_relaxed_changes_survive(published):
    """Whitespace changes that relaxed canonicalisation forgives (re-folding, trailing blanks) keep it valid."""
    signed = sign_message(MESSAGE, [_signer(RSA_SHA256)])
    changed = (
        signed.replace(b"Subject: Quarterly   numbers", b"Subject:  Quarterly numbers ").replace(
            b"Hello Bob,  \t\r\n", b"Hello Bob,\r\n"
        )
        + b"\r\n\r\n"
    )
    assert dkim.verify(changed, dnsfunc=published)


def test_two_signatures_both_verify(published):
    signed = sign_message(MESSAGE, [_signer(RSA_SHA256), _signer(ED25519_SHA256)])
    assert signed.count(b"DKIM-Signature:") == 2
    assert dkim.verify(signed, dnsfunc=published)
    d = dkim.DKIM(signed)
    assert d.verify(idx=0, dnsfunc=published) and d.verify(idx=1, dnsfunc=published)


def test_bare_line_feeds_are_signed_as_sent(published):
    """A bare-LF message is signed in its CRLF form, which is what the sender transmits."""
    signed = sign_message(MESSAGE.replace(b"\r\n", b"\n"), [_signer(RSA_SHA256)])
    assert b"\r\n" in signed and b"\n" not in signed.replace(b"\r\n", b"")
    assert dkim.verify(signed, dnsfunc=published)


def test_sample_message_of_the_benchmark_verifies(published):
    message = sample_message(5000)
    assert 4900 <= len(message) <= 5200
    assert dkim.verify(sign_message(message, [_signer(RSA_SHA256)]), dnsfunc=published)


def test_canonicalisation_matches_dkimpy():
    from dkim.canonicalization import Relaxed

    body = b"a  b \t\r\n\r\nc\t\r\n \r\n\r\n"
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)
    assert relaxed_body(b"") == Relaxed.canonicalize_body(b"")
    assert relaxed_body(b"\r\n\r\n") == Relaxed.canonicalize_body(b"\r\n\r\n")
    [(name, value)] = Relaxed.canonicalize_headers([(b"SubJect ", b"  a \t b\r\n\tc  \r\n")])
    assert relaxed_header(b"SubJect ", b"  a \t b\r\n\tc  ") == name + b":" + value.rstrip(b"\r\n")
    assert body_hash(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_wrong_key_type_is_refused():
    with pytest.raises(ValueError):
        DkimSigner("example.test", "s", KEYS[ED25519_SHA256], RSA_SHA256)
    with pytest.raises(ValueError):
        DkimSigner("example.test", "s", KEYS[RSA_SHA256], "rsa-sha1")


def test_signing_rate_is_reported():
    from queues.delivery.bench_sign import measure_sign_rate

    rate = measure_sign_rate(seconds=0.3)
    assert rate > 100  # the figure itself is reported by `python -m queues.delivery.bench_sign`
