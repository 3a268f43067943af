"""DKIM signing (RFC 6376, RFC 8463) through OpenSSL, on the hot path.

Canonicalisation is relaxed/relaxed, done here with a few byte regexes (dkimpy's is correct but slower); the
signature comes from the `cryptography` package (OpenSSL): RSA-SHA256 or Ed25519-SHA256. dkimpy's pure-Python RSA
signs ~90 messages/s per core, OpenSSL ~1,000 (see `queues.delivery.bench_sign`). Tests verify every signature with
dkimpy against a real DNS server.

From is over-signed (listed once more than it occurs), so a From header added in transit breaks the signature.
Messages are expected with CRLF line endings (intake normalises them); bare CR or LF are normalised here too, the
same way the SMTP sender does before sending, so that what is signed is what is sent.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
ALGORITHMS = (RSA_SHA256, ED25519_SHA256)

#: Header fields signed when present, in this order (lower case). From is over-signed.
SIGNED_HEADERS = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
OVERSIGNED_HEADERS = frozenset({"from"})
RSA_KEY_BITS = 2048
FOLD_WIDTH = 76  # characters per line of the DKIM-Signature header before folding

_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_WSP_RUN = re.compile(rb"[ \t]{2,}|\t")  # whitespace that relaxed canonicalisation changes (a lone space stays)
_HEADER_LINE = re.compile(rb"([^:\r\n]+):")


def to_crlf(data: bytes) -> bytes:
    """`data` with every line ending (CRLF, bare LF, bare CR) as CRLF; CRLF-only data comes back unchanged."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    rest = data.replace(b"\r\n", b"")
    if b"\n" not in rest and b"\r" not in rest:
        return data
    return _LINE_ENDINGS.sub(b"\r\n", data)


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Split a CRLF message into its header fields [(name, raw value after the colon, unfolded CRLFs kept)] and
    body. Lines before the first field that are not fields are ignored."""
    end = message.find(b"\r\n\r\n")
    if end == -1:
        header_block, body = message, b""
    else:
        header_block, body = message[: end + 2], message[end + 4 :]
    fields: list[list[bytes]] = []
    for line in header_block.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if fields:
                fields[-1][1] += b"\r\n" + line
            continue
        match = _HEADER_LINE.match(line)
        if match is None:
            continue
        fields.append([match.group(1), line[match.end() :]])
    return [(name, value) for name, value in fields], body


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2 relaxed header canonicalisation, without the final CRLF."""
    value = _collapse_wsp(value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 relaxed body canonicalisation of a CRLF body."""
    body = _collapse_wsp(body).replace(b" \r\n", b"\r\n").rstrip(b"\r\n ")
    return body + b"\r\n" if body else b""


def _collapse_wsp(data: bytes) -> bytes:
    """Every run of spaces and tabs as one space. Most text has neither tabs nor double spaces: two C-speed scans
    then skip the regular expression (a third of a worker's Python time on 5 KB bodies otherwise)."""
    if b"\t" not in data and b"  " not in data:
        return data
    return _WSP_RUN.sub(b" ", data)


def body_hash(body: bytes) -> str:
    """The bh= value of a (CRLF) body under relaxed canonicalisation."""
    return base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()


def load_private_key(private_key_pem: str | bytes, algorithm: str):
    """Load a PEM private key (PKCS#8 or traditional); an Ed25519 key may also be its raw 32 bytes in base64."""
    data = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    if b"-----BEGIN" in data:
        key = serialization.load_pem_private_key(data, password=None)
    elif algorithm == ED25519_SHA256:
        key = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(data.strip()))
    else:
        raise ValueError("expected a PEM private key")
    expected = rsa.RSAPrivateKey if algorithm == RSA_SHA256 else ed25519.Ed25519PrivateKey
    if not isinstance(key, expected):
        raise ValueError(f"the key does not match the algorithm {algorithm}")
    return key


def public_key_txt(private_key_pem: str | bytes, algorithm: str) -> str:
    """The DNS TXT value publishing the public half of a private key: `v=DKIM1; k=rsa; p=...`."""
    public = load_private_key(private_key_pem, algorithm).public_key()
    if algorithm == ED25519_SHA256:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def generate_private_key(algorithm: str = RSA_SHA256) -> str:
    """A new PEM (PKCS#8) private key for `algorithm` (RSA keys are 2048 bits)."""
    if algorithm == RSA_SHA256:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    elif algorithm == ED25519_SHA256:
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class DkimSigner:
    """Signs messages for one (domain, selector) key. Build once per key and reuse: loading a key costs more than
    signing with it."""

    def __init__(self, domain: str, selector: str, private_key_pem: str | bytes, algorithm: str = RSA_SHA256):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
        self.domain = domain.strip().lower().rstrip(".").encode("idna").decode("ascii")
        self.selector = selector.strip()
        self.algorithm = algorithm
        self._key = load_private_key(private_key_pem, algorithm)

    def __repr__(self) -> str:
        return f"<DkimSigner {self.selector}._domainkey.{self.domain} {self.algorithm}>"

    def sign(self, message: bytes, *, headers=None, timestamp: int | None = None) -> bytes:
        """Return the `DKIM-Signature: ...\\r\\n` header (folded) to prepend to `message`.

        `headers` overrides the names of the fields to sign (default: SIGNED_HEADERS, those present, From
        over-signed).
        """
        return self._sign_crlf(to_crlf(message), headers=headers, timestamp=timestamp)

    def _sign_crlf(self, message: bytes, *, headers=None, timestamp: int | None = None) -> bytes:
        """`sign` of a message already in CRLF form."""
        fields, body = split_message(message)
        by_name: dict[bytes, list[tuple[bytes, bytes]]] = {}
        for name, value in fields:
            by_name.setdefault(name.strip().lower(), []).append((name, value))
        names: list[str] = []
        for name in headers if headers is not None else SIGNED_HEADERS:
            name = name.lower()
            count = len(by_name.get(name.encode(), ()))
            if name in OVERSIGNED_HEADERS:
                count += 1
            names.extend([name] * count)
        # RFC 6376 5.4.2: a name listed n times signs its last n instances, from the bottom up.
        signed = []
        taken: dict[bytes, int] = {}
        for name in names:
            key = name.encode()
            instances = by_name.get(key, ())
            used = taken.get(key, 0)
            if used < len(instances):
                signed.append(relaxed_header(*instances[len(instances) - 1 - used]))
            taken[key] = used + 1
        header = self._header(names, body_hash(body), int(time.time()) if timestamp is None else timestamp)
        # The signature header itself is hashed last, with an empty b= and without its final CRLF.
        data = b"".join(line + b"\r\n" for line in signed) + relaxed_header(b"DKIM-Signature", header[15:])
        signature = base64.b64encode(self._sign(data)).decode()
        return header + _fold_value(signature, len("b=")).encode() + b"\r\n"

    def _sign(self, data: bytes) -> bytes:
        if self.algorithm == RSA_SHA256:
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self._key.sign(hashlib.sha256(data).digest())  # RFC 8463: Ed25519 over the SHA-256 hash

    def _header(self, names: list[str], bh: str, timestamp: int) -> bytes:
        """The DKIM-Signature header up to and including an empty `b=` (what gets signed)."""
        lines = [
            f"DKIM-Signature: v=1; a={self.algorithm}; c=relaxed/relaxed;",
            f"d={self.domain}; s={self.selector}; t={timestamp};",
        ]
        h_line = "h="
        for index, name in enumerate(names):
            piece = name + (":" if index < len(names) - 1 else ";")
            if len(h_line) + len(piece) > FOLD_WIDTH:
                lines.append(h_line)
                h_line = ""
            h_line += piece
        lines.append(h_line)
        lines.append(f"bh={bh};")
        lines.append("b=")
        return "\r\n\t".join(lines).encode()


def _fold_value(value: str, start: int) -> str:
    """Fold a base64 value into lines of at most FOLD_WIDTH characters, the first already `start` long."""
    width = FOLD_WIDTH - 1
    first = width - start
    chunks = [value[:first]] + [value[i : i + width] for i in range(first, len(value), width)]
    return "\r\n\t".join(chunk for chunk in chunks if chunk)


def sign_message(message: bytes, signers: list[DkimSigner]) -> bytes:
    """`message` (CRLF) with one DKIM-Signature header per signer prepended (each signs the original message)."""
    if not signers:
        return message
    message = to_crlf(message)
    return b"".join(signer._sign_crlf(message) for signer in signers) + message
