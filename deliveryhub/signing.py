"""
Signatures on what DeliveryHub hands out: PAdES on PDFs (pyHanko), a detached CMS signature on archives.

The platform signing key (`SigningKey`: ECDSA P-256, a self-signed certificate) is generated on first use and its
private key is encrypted at rest with the data key. A signed archive is a ZIP whose `manifest.json` lists the
SHA-256 of every other member and whose `signature.p7s` is a CMS signature over the manifest; `verify_file()`
checks either kind of file and says whether it is intact, who signed it, and whether the signer is one of this
platform's keys (current or earlier).
"""

import asyncio
import hashlib
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from asn1crypto import cms, keys, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.db import IntegrityError, transaction
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from .models import SigningKey

CERT_VALIDITY_DAYS = 3650
SIGNATURE_FIELD = "DeliveryHubSignature"
ARCHIVE_MANIFEST = "manifest.json"
ARCHIVE_SIGNATURE = "signature.p7s"
HASH_BLOCK = 1 << 20

__all__ = ["Verification", "active_key", "certificate_pem", "sign_pdf", "verify_file", "write_signed_zip"]


# ---------------------------------------------------------------------------------------------------------------------
# The key
# ---------------------------------------------------------------------------------------------------------------------


def _generate():
    """A new ECDSA P-256 key with a self-signed certificate for document signing."""
    private = ec.generate_private_key(ec.SECP256R1())
    host = settings.SITE_URL.split("://")[-1].split("/")[0] or "localhost"
    name = cx509.Name([
        cx509.NameAttribute(NameOID.COMMON_NAME, f"DeliveryHub platform signing key ({host})"[:64]),
        cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "DeliveryHub"),
    ])  # fmt: skip
    now = datetime.now(UTC)
    cert = (
        cx509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CERT_VALIDITY_DAYS))
        .add_extension(cx509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            cx509.KeyUsage(digital_signature=True, content_commitment=True, key_cert_sign=True, crl_sign=False,
                           key_encipherment=False, data_encipherment=False, key_agreement=False,
                           encipher_only=False, decipher_only=False),
            critical=True,
        )  # fmt: skip
        .add_extension(cx509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
        .sign(private, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return SigningKey(
        fingerprint=hashlib.sha256(der).hexdigest(),
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        private_key=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        subject=name.rfc4514_string()[:200],
        not_after=cert.not_valid_after_utc,
        active=True,
    )


def active_key():
    """The platform signing key, generated (and audited) on first use; safe when two processes race for it."""
    key = SigningKey.objects.filter(active=True).first()
    if key is not None:
        return key
    candidate = _generate()
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError:  # another process generated one first
        return SigningKey.objects.get(active=True)
    return candidate


def certificate_pem():
    return active_key().certificate_pem


def _asn1_cert(pem):
    return x509.Certificate.load(cx509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER))


def _signer(key):
    private = serialization.load_pem_private_key(key.private_key.encode(), password=None)
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    cert = _asn1_cert(key.certificate_pem)
    return signers.SimpleSigner(
        signing_cert=cert, signing_key=keys.PrivateKeyInfo.load(der),
        cert_registry=SimpleCertificateStore.from_certs([cert]),
    )  # fmt: skip


def _trust():
    """A validation context trusting every platform signing key this install knows (and nothing else)."""
    roots = [_asn1_cert(pem) for pem in SigningKey.objects.values_list("certificate_pem", flat=True)]
    return ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail")


# ---------------------------------------------------------------------------------------------------------------------
# Signing
# ---------------------------------------------------------------------------------------------------------------------


def _outside_event_loop(func, *args, **kwargs):
    """Call `func` (pyHanko's sync API runs `asyncio.run`) here, or in a helper thread when this thread already runs
    an event loop (an async server, a test driving a browser). Database access stays with the caller."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return func(*args, **kwargs)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(func, *args, **kwargs).result()


def sign_pdf(pdf_bytes, *, reason):
    """`pdf_bytes` with a PAdES (baseline B) signature of the platform key appended as an incremental update."""
    meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD, subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256",
        reason=reason, location=settings.SITE_URL,
    )  # fmt: skip
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes))
    signer = _signer(active_key())
    return _outside_event_loop(signers.sign_pdf, writer, meta, signer=signer).getvalue()


def sign_detached(data):
    """A DER-encoded detached CMS signature of `data` (bytes) by the platform key."""
    signer = _signer(active_key())
    signed = _outside_event_loop(asyncio.run, signer.async_sign_general_data(data, "sha256", detached=True))
    return signed.dump()


def file_sha256(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            sha.update(block)
    return sha.hexdigest()


def write_signed_zip(target, members, *, kind, info=None):
    """Write a signed archive: `members` is a list of (name, path on disk); the manifest names `kind` and
    carries `info` (JSON-safe), the SHA-256 of each member, and is signed by the platform key."""
    manifest = {
        "format": "deliveryhub-signed-archive",
        "version": 1,
        "kind": kind,
        "info": info or {},
        "signer": active_key().fingerprint,
        "files": {name: file_sha256(path) for name, path in members},
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in members:
            archive.write(path, name)
        archive.writestr(ARCHIVE_MANIFEST, manifest_bytes)
        archive.writestr(ARCHIVE_SIGNATURE, sign_detached(manifest_bytes))
    return manifest


# ---------------------------------------------------------------------------------------------------------------------
# Verifying
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Verification:
    """What `verify_file` found: `ok` only when intact, covering the whole file and signed by a platform key."""

    kind: str = ""  # "pdf" or "archive"
    intact: bool = False
    trusted: bool = False
    covers_everything: bool = False
    signer: str = ""
    fingerprint: str = ""
    signed_at: datetime | None = None
    problems: list = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def ok(self):
        return self.intact and self.trusted and self.covers_everything and not self.problems

    def summary(self):
        when = f" at {self.signed_at:%Y-%m-%d %H:%M:%S} UTC" if self.signed_at else ""
        if self.ok:
            return f"Valid: signed by {self.signer} (certificate {self.fingerprint[:16]}…){when}; unmodified."
        if self.intact and self.covers_everything and not self.problems:
            return (f"NOT trusted: unmodified, but signed by a certificate this platform does not know "
                    f"({self.signer}, {self.fingerprint}).")  # fmt: skip
        return "NOT valid: " + "; ".join(self.problems or ["the signature does not verify."])


def _signer_info(verification, cert):
    if cert is None:
        return
    verification.signer = cert.subject.human_friendly
    verification.fingerprint = hashlib.sha256(cert.dump()).hexdigest()
    if not SigningKey.objects.filter(fingerprint=verification.fingerprint).exists():
        verification.trusted = False


def verify_pdf(data):
    result = Verification(kind="pdf")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = reader.embedded_signatures
    except (PdfReadError, ValueError, KeyError) as exc:
        result.problems.append(f"not a readable PDF ({exc})")
        return result
    if not signatures:
        result.problems.append("the PDF carries no signature")
        return result
    signature = signatures[-1]
    try:
        status = _outside_event_loop(validate_pdf_signature, signature, _trust())
    except Exception as exc:  # pyHanko raises a range of errors for a damaged signature
        result.problems.append(f"the signature cannot be checked ({type(exc).__name__}: {exc})")
        return result
    result.intact = bool(status.intact and status.valid)
    result.trusted = bool(status.trusted)
    result.covers_everything = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    result.signed_at = status.signer_reported_dt
    result.details = {"coverage": str(status.coverage), "modification_level": str(status.modification_level)}
    _signer_info(result, status.signing_cert)
    if not result.intact:
        result.problems.append("the document was changed after it was signed (digest or signature mismatch)")
    if result.intact and not result.covers_everything:
        result.problems.append("bytes were added after the signature")
    return result


def verify_zip(data):
    result = Verification(kind="archive")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        if ARCHIVE_MANIFEST not in names or ARCHIVE_SIGNATURE not in names:
            result.problems.append("not a signed DeliveryHub archive (no manifest or signature)")
            return result
        manifest_bytes = archive.read(ARCHIVE_MANIFEST)
        signed = cms.ContentInfo.load(archive.read(ARCHIVE_SIGNATURE))["content"]
        trust = _trust()
        status = _outside_event_loop(
            lambda: asyncio.run(async_validate_detached_cms(manifest_bytes, signed, signer_validation_context=trust))
        )
        manifest = json.loads(manifest_bytes)
        result.intact = bool(status.intact and status.valid)
        result.trusted = bool(status.trusted)
        result.signed_at = status.signer_reported_dt
        result.details = {"kind": manifest.get("kind"), "info": manifest.get("info", {})}
        _signer_info(result, status.signing_cert)
        if not result.intact:
            result.problems.append("the manifest was changed after it was signed")
        listed = manifest.get("files", {})
        for name, digest in listed.items():
            if name not in names:
                result.problems.append(f"{name} is missing")
            elif hashlib.sha256(archive.read(name)).hexdigest() != digest:
                result.problems.append(f"{name} was changed after signing")
        extra = names - set(listed) - {ARCHIVE_MANIFEST, ARCHIVE_SIGNATURE}
        if extra:
            result.problems.append(f"files added after signing: {', '.join(sorted(extra))}")
        result.covers_everything = not extra
    except (zipfile.BadZipFile, ValueError, KeyError, TypeError) as exc:
        result.problems.append(f"the archive is damaged ({type(exc).__name__}: {exc})")
    except Exception as exc:  # a damaged CMS structure
        result.problems.append(f"the signature cannot be checked ({type(exc).__name__}: {exc})")
    return result


def verify_bytes(data):
    """Verify a signed PDF or signed archive given as bytes."""
    if data[:5] == b"%PDF-":
        return verify_pdf(data)
    if data[:4] == b"PK\x03\x04":
        return verify_zip(data)
    result = Verification()
    result.problems.append("neither a PDF nor a signed archive")
    return result


def verify_file(path):
    with open(path, "rb") as f:
        return verify_bytes(f.read())
