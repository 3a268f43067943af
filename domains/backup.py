"""Configuration backup of the domains app: sending domains and their DKIM keys (private keys still encrypted)."""

from deliveryhub import backup

from .models import DkimKey, SendingDomain

backup.register(backup.Section(
    "domains.sending_domains", SendingDomain, order=30, key=("tenant", "name"),
    fields=("uuid", "return_path_subdomain", "dmarc_policy", "dmarc_rua", "dmarc_ruf", "dmarc_alignment",
            "bulk_sender", "spf_all", "spf_extra_terms", "tls_policy", "mta_sts_mode", "tls_rpt_rua",
            "feedback_address", "verification_token", "ownership_verified", "status", "status_changed",
            "dkim_verified", "ever_verified", "allow_unverified_sending"),
    refs={"tenant": "core.tenants"},
))  # fmt: skip

backup.register(backup.Section(
    "domains.dkim_keys", DkimKey, order=31, key=("domain", "selector"),
    fields=("tenant", "algorithm", "key_bits", "public_key", "state", "verified_at", "activated_at",
            "retiring_since", "retire_after", "retired_at"),
    refs={"tenant": "core.tenants", "domain": "domains.sending_domains"}, secrets=("private_key",),
))  # fmt: skip
