"""DKIM keys: messages signed with a domain's key verify (dkimpy) against the TXT served by a loopback DNS
server; rotation keeps the old key verifying during its grace period; key sizes; the signing set."""

from datetime import timedelta

import dkim
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from deliveryhub.dns import query
from deliveryhub.models import AuditEntry
from deliveryhub.testing.dns import txt_strings
from domains import services
from domains.choices import DkimAlgorithm, DkimKeyState, DomainStatus, RecordKind
from domains.keys import dkimpy_private_key
from domains.models import DkimKey
from domains.testing import DNSTestCase

MESSAGE = (
    b"From: News <news@example.test>\r\nTo: someone@receiver.test\r\nSubject: Hello\r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nHello there.\r\n"
)


def sign(key, message=MESSAGE):
    """Sign like the delivery engine will: with the decrypted PEM from `private_key_pem()`."""
    signature = dkim.sign(
        message, key.selector.encode(), key.domain.name.encode(),
        dkimpy_private_key(key.private_key_pem(), key.algorithm),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        signature_algorithm=key.algorithm.encode(),
    )  # fmt: skip
    return signature + message


def dnsfunc(name, timeout=5):
    """dkimpy's TXT lookup, answered by the app's resolver (pointed at the loopback server)."""
    result = query(name.decode() if isinstance(name, bytes) else name, "TXT")
    return b"".join(b"".join(rdata.strings) for rdata in result.answer) if result.ok else None


def verifies(signed, index=0):
    return dkim.DKIM(signed).verify(idx=index, dnsfunc=dnsfunc)


class DkimSigningTest(DNSTestCase):
    def setUp(self):
        super().setUp()
        self.domain = services.create_domain(self.tenant_a, "example.test")

    def verify_domain(self):
        services.verify_domain(self.domain)
        self.domain.refresh_from_db()

    def test_signed_message_verifies_against_published_record(self):
        self.publish(self.domain)
        self.verify_domain()
        [key] = services.signing_keys(self.domain)
        self.assertTrue(dkim.verify(sign(key), dnsfunc=dnsfunc))
        tampered = sign(key).replace(b"Hello there.", b"Pay me now.")
        self.assertFalse(dkim.verify(tampered, dnsfunc=dnsfunc))

    def test_rotation_new_key_signs_after_verification_old_verifies_during_grace(self):
        self.publish(self.domain)
        self.verify_domain()
        [old] = services.signing_keys(self.domain)
        signed_before = sign(old)

        new = services.rotate_dkim_key(self.domain, acting_user=self.alice)
        self.assertEqual(new.state, DkimKeyState.PENDING)
        self.assertTrue(AuditEntry.objects.filter(action="dkim.rotate", object_id=str(self.domain.pk)).exists())
        self.assertEqual(services.signing_keys(self.domain), [old])  # not before its record verifies
        plan_selectors = [r.subject for r in services.record_plan(self.domain) if r.kind == RecordKind.DKIM]
        self.assertEqual(plan_selectors, [old.selector, new.selector])
        # DNS not updated yet: the new key stays pending
        self.verify_domain()
        new.refresh_from_db()
        self.assertEqual(new.state, DkimKeyState.PENDING)
        # DNS updated: the new key signs, the old one retires after the grace period but stays published
        self.publish(self.domain)
        self.verify_domain()
        new.refresh_from_db()
        old.refresh_from_db()
        self.assertEqual(new.state, DkimKeyState.ACTIVE)
        self.assertEqual(old.state, DkimKeyState.RETIRING)
        self.assertAlmostEqual(old.retire_after - old.retiring_since, timedelta(days=7), delta=timedelta(seconds=1))
        self.assertEqual(services.signing_keys(self.domain), [new])
        self.assertTrue(dkim.verify(sign(new), dnsfunc=dnsfunc))
        self.assertTrue(dkim.verify(signed_before, dnsfunc=dnsfunc))  # mail signed before rotation still verifies
        self.assertEqual(self.domain.status, DomainStatus.VERIFIED)
        # after the grace period the old key retires and leaves the plan
        self.assertEqual(services.retire_expired_keys(now=timezone.now() + timedelta(days=8)), 1)
        old.refresh_from_db()
        self.assertEqual(old.state, DkimKeyState.RETIRED)
        self.assertNotIn(old.selector, [r.subject for r in services.record_plan(self.domain)])
        self.assertTrue(AuditEntry.objects.filter(action="dkim.retire", object_id=str(old.pk)).exists())

    @override_settings(DKIM_ROTATION_GRACE_SECONDS=3600)
    def test_grace_period_is_a_setting(self):
        self.publish(self.domain)
        self.verify_domain()
        old = services.signing_keys(self.domain)[0]
        services.rotate_dkim_key(self.domain)
        self.publish(self.domain)
        self.verify_domain()
        old.refresh_from_db()
        self.assertEqual(old.retire_after - old.retiring_since, timedelta(hours=1))

    def test_rotating_twice_before_verification_retires_the_unverified_key(self):
        first = services.rotate_dkim_key(self.domain)
        second = services.rotate_dkim_key(self.domain, bits=3072)
        first.refresh_from_db()
        original = self.domain.dkim_keys.exclude(pk__in=[first.pk, second.pk]).get()
        self.assertEqual(first.state, DkimKeyState.RETIRED)
        self.assertEqual(original.state, DkimKeyState.RETIRED)  # the domain's first key, never verified either
        self.assertEqual(second.key_bits, 3072)
        self.assertNotEqual(first.selector, second.selector)

    def test_ed25519_second_signature(self):
        services.rotate_dkim_key(self.domain, algorithm=DkimAlgorithm.ED25519_SHA256)
        self.publish(self.domain)
        self.verify_domain()
        keys = services.signing_keys(self.domain)
        self.assertEqual([k.algorithm for k in keys], ["rsa-sha256", "ed25519-sha256"])
        self.assertIn("k=ed25519", keys[1].dns_txt_value())
        signed = sign(keys[0], sign(keys[1]))  # two signatures, RSA outermost
        self.assertTrue(verifies(signed, 0))
        self.assertTrue(verifies(signed, 1))

    def test_ed25519_alone_does_not_verify_dkim(self):
        rsa = self.domain.dkim_keys.get()
        ed = services.create_dkim_key(self.domain, algorithm=DkimAlgorithm.ED25519_SHA256)
        self.publish(self.domain, skip=(RecordKind.DKIM,))
        self.dns.set_zone(ed.dns_name, f"@ IN TXT {txt_strings(ed.dns_txt_value())}")
        self.verify_domain()
        ed.refresh_from_db()
        self.assertEqual(ed.state, DkimKeyState.ACTIVE)  # its record verified
        self.assertFalse(self.domain.dkim_verified)  # but it is only the second signature: RSA must sign too
        self.assertEqual(self.domain.status, DomainStatus.PENDING)
        allowed, reason = self.domain.can_send()
        self.assertFalse(allowed)
        self.assertIn(rsa.dns_name, reason)

    def test_key_sizes(self):
        for bits in (1024, 1536, 2047, 5000):
            with self.assertRaises(ValidationError):
                services.create_dkim_key(self.domain, bits=bits)
        with self.assertRaises(ValidationError):
            services.create_dkim_key(self.domain, algorithm="rsa-sha1")
        key = services.create_dkim_key(self.domain, bits=3072)
        self.assertEqual(key.key_bits, 3072)
        self.assertEqual(DkimKey.objects.filter(domain=self.domain, key_bits__lt=2048).count(), 0)
