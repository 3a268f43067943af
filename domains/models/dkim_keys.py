"""DKIM keys: one selector and key pair each, the private key encrypted at rest."""

import re

from django.core.exceptions import ValidationError
from django.db import models

from deliveryhub.choices import Area
from deliveryhub.crypto import EncryptedTextField
from deliveryhub.models import ChangeLoggedModel, TenantModel

from .. import keys
from ..choices import DKIM_STATE_BADGES, DkimAlgorithm, DkimKeyState
from ..constants import RSA_ALLOWED_BITS, RSA_MIN_BITS
from ..querysets import DkimKeyQuerySet

_SELECTOR = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


class DkimKey(ChangeLoggedModel, TenantModel):
    """A DKIM key of a sending domain: selector, algorithm, public key, encrypted private key and state.

    State runs pending → active → retiring → retired: a new key is `pending` (its record is in the plan),
    becomes `active` (signs) once its TXT record verifies, and the key it replaces stays published as
    `retiring` until `retire_after`, then is `retired`. The private key is a PKCS#8 PEM stored with the
    data key (`EncryptedTextField`): a database dump never contains it.
    """

    domain = models.ForeignKey("domains.SendingDomain", on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=16, choices=DkimAlgorithm.choices, default=DkimAlgorithm.RSA_SHA256)
    key_bits = models.PositiveSmallIntegerField(null=True, blank=True, help_text="RSA modulus size; empty for Ed25519.")
    public_key = models.TextField(help_text="The p= value: base64 SubjectPublicKeyInfo (RSA) or raw key (Ed25519).")
    private_key = EncryptedTextField()
    state = models.CharField(max_length=10, choices=DkimKeyState.choices, default=DkimKeyState.PENDING, db_index=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retiring_since = models.DateTimeField(null=True, blank=True)
    retire_after = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    permission_area = Area.INFRASTRUCTURE
    audit_exclude = ChangeLoggedModel.audit_exclude | {"private_key", "public_key"}

    objects = DkimKeyQuerySet.as_manager()

    class Meta:
        ordering = ["domain__name", "-created"]
        verbose_name = "DKIM key"
        constraints = [models.UniqueConstraint(fields=["domain", "selector"], name="dkimkey_unique_domain_selector")]

    def __str__(self):
        return f"{self.selector}._domainkey.{self.domain.name}" if self.domain_id else self.selector

    def clean(self):
        self.selector = (self.selector or "").strip().lower()
        if not _SELECTOR.match(self.selector):
            raise ValidationError({"selector": "A selector is one or more host labels (letters, digits, hyphens)."})
        if self.algorithm == DkimAlgorithm.RSA_SHA256:
            if self.key_bits is None or self.key_bits < RSA_MIN_BITS:
                raise ValidationError({"key_bits": f"RSA keys below {RSA_MIN_BITS} bits are refused for new keys."})
            if self.key_bits not in RSA_ALLOWED_BITS:
                raise ValidationError({"key_bits": f"RSA keys are {', '.join(map(str, RSA_ALLOWED_BITS))} bits."})
        elif self.key_bits is not None:
            raise ValidationError({"key_bits": "Ed25519 keys have a fixed size: leave the size empty."})

    # -- derived --------------------------------------------------------------------------------------------------
    @property
    def dns_name(self):
        return f"{self.selector}._domainkey.{self.domain.name}"

    def dns_txt_value(self):
        """The TXT record value: `v=DKIM1; k=rsa; p=…` (split into ≤255-byte strings when published)."""
        return f"v=DKIM1; k={keys.key_type_tag(self.algorithm)}; p={self.public_key}"

    def dns_txt_strings(self):
        return keys.split_txt(self.dns_txt_value())

    def private_key_pem(self):
        """The decrypted PKCS#8 PEM private key (for the signer; never shown without a fresh 2FA check)."""
        return self.private_key

    @property
    def label(self):
        if self.algorithm == DkimAlgorithm.ED25519_SHA256:
            return "Ed25519"
        return f"RSA {self.key_bits}"

    @property
    def state_badge(self):
        return DKIM_STATE_BADGES.get(self.state, "secondary")
