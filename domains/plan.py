"""
The record plan: every DNS record a sending domain should publish (and every check we make), with why.

`record_plan(domain)` is pure apart from reading the domain's keys and the IPs its tenant sends from;
`zone_snippet(plan)` renders the publishable part as zone-file lines.
"""

from dataclasses import dataclass

from django.conf import settings

from ippools.models import IPAddress

from . import keys, spf
from .choices import PUBLISHED_KEY_STATES, DkimKeyState, DomainStatus, RecordKind
from .constants import MTA_STS_POLICY_LABEL, MTA_STS_TXT_LABEL, TLS_RPT_LABEL, ZONE_SNIPPET_TTL


@dataclass
class PlannedRecord:
    """One expected record: where, what type, which value, why; `publish` is False for derived checks."""

    kind: str
    name: str
    rdtype: str
    value: str
    why: str
    subject: str = ""
    required: bool = True
    publish: bool = True
    data: object = None  # the key or IP row the record is about

    @property
    def zone_value(self):
        return keys.quote_txt(self.value) if self.rdtype == "TXT" else self.value


def sending_ips(domain):
    """The IP rows the domain's tenant may send from (the IP pools app), in address order."""
    return list(IPAddress.objects.usable_by(domain.tenant_id).order_by("address"))


def spf_value(domain, ips=None):
    ips = sending_ips(domain) if ips is None else ips
    return spf.build_record([ip.address for ip in ips], domain.spf_extra_terms, settings.SPF_INCLUDE, domain.spf_all)


def record_plan(domain, ips=None):
    """Every record to publish for `domain`, and the derived checks (alignment, PTR), in display order."""
    ips = sending_ips(domain) if ips is None else ips
    plan = []
    claim = domain.status == DomainStatus.UNVERIFIED_CLAIM
    plan.append(PlannedRecord(
        RecordKind.OWNERSHIP, domain.name, "TXT", domain.verification_txt,
        "Proves this tenant controls the domain. Required because another tenant has claimed it."
        if claim else "Proves this tenant controls the domain; keep it so that nobody else can claim it.",
        required=claim,
    ))  # fmt: skip
    how = f"include:{settings.SPF_INCLUDE}" if settings.SPF_INCLUDE else "the IPs of the pools you send through"
    plan.append(PlannedRecord(
        RecordKind.SPF, domain.name, "TXT", spf_value(domain, ips),
        f"SPF authorises {how} to send as {domain.name}. Publish exactly one SPF record: "
        "merge these terms into an existing one.",
        data=ips,
    ))  # fmt: skip
    for key in domain.dkim_keys.filter(state__in=PUBLISHED_KEY_STATES).order_by("created"):
        until = f"{key.retire_after:%Y-%m-%d %H:%M} UTC" if key.retire_after else "it retires"
        why = {
            DkimKeyState.PENDING: "New key: it starts signing once this record verifies.",
            DkimKeyState.ACTIVE: f"The key signing your mail now (DKIM d={domain.name}).",
            DkimKeyState.RETIRING: f"Previous key: keep it published until {until} so that mail already signed "
            "with it still verifies.",
        }[key.state]
        plan.append(
            PlannedRecord(
                RecordKind.DKIM,
                key.dns_name,
                "TXT",
                key.dns_txt_value(),
                f"{key.label}{' (second signature beside RSA, RFC 8463)' if key.key_bits is None else ''}: {why}",
                subject=key.selector,
                required=key.state != DkimKeyState.RETIRING,
                data=key,
            )
        )
    plan.append(PlannedRecord(
        RecordKind.DMARC, f"_dmarc.{domain.name}", "TXT", domain.dmarc_txt_value(),
        f"DMARC tells receivers what to do with mail claiming to be from {domain.name} that fails SPF and DKIM "
        f"alignment (your choice: p={domain.dmarc_policy}) and where to send reports.",
    ))  # fmt: skip
    plan.append(PlannedRecord(
        RecordKind.RETURN_PATH_MX, domain.return_path_host, "MX", f"10 {settings.BOUNCE_MX_HOST}.",
        f"Bounces are sent to the envelope sender at {domain.return_path_host}: this MX brings them to our SMTP "
        "listener, which records them against the message.",
    ))  # fmt: skip
    plan.append(PlannedRecord(
        RecordKind.RETURN_PATH_SPF, domain.return_path_host, "TXT", spf_value(domain, ips),
        f"Receivers check SPF for the envelope sender's domain ({domain.return_path_host}), not the From domain.",
    ))  # fmt: skip
    plan.append(PlannedRecord(
        RecordKind.ALIGNMENT, f"_dmarc.{domain.name}", "TXT",
        f"DKIM d={domain.name}; return path {domain.return_path_host}",
        "DMARC passes when SPF or DKIM passes for a domain aligned with the From domain. DKIM d= is the From "
        "domain (aligned in relaxed and strict mode); the return path is a subdomain (aligned only in relaxed mode).",
        publish=False,
    ))  # fmt: skip
    for ip in ips:
        plan.append(PlannedRecord(
            RecordKind.PTR, ip.address, "PTR", f"{ip.ehlo_hostname or '(a name resolving back to ' + ip.address + ')'}",
            f"Receivers check that {ip.address} has a PTR name that resolves back to it (forward-confirmed reverse "
            "DNS); the IP's owner publishes it, ideally the EHLO name.",
            subject=ip.address, required=False, publish=False, data=ip,
        ))  # fmt: skip
    if domain.mta_sts_mode:
        host = domain.return_path_host
        plan.append(PlannedRecord(
            RecordKind.MTA_STS, f"{MTA_STS_TXT_LABEL}.{host}", "TXT", f"v=STSv1; id={domain.uuid.hex[:20]}",
            f"MTA-STS ({domain.mta_sts_mode}) makes senders use verified TLS to deliver bounces to {host}; change "
            "the id whenever the policy changes.", subject="txt", required=False,
        ))  # fmt: skip
        if settings.MTA_STS_POLICY_HOST:
            plan.append(PlannedRecord(
                RecordKind.MTA_STS, f"{MTA_STS_POLICY_LABEL}.{host}", "CNAME", f"{settings.MTA_STS_POLICY_HOST}.",
                f"The policy host serving https://{MTA_STS_POLICY_LABEL}.{host}/.well-known/mta-sts.txt.",
                subject="policy-host", required=False,
            ))  # fmt: skip
    if domain.tls_rpt_rua:
        plan.append(PlannedRecord(
            RecordKind.TLS_RPT, f"{TLS_RPT_LABEL}.{domain.return_path_host}", "TXT",
            f"v=TLSRPTv1; rua=mailto:{domain.tls_rpt_rua}",
            "TLS-RPT asks senders to report TLS failures when delivering to the bounce host.", required=False,
        ))  # fmt: skip
    return plan


def zone_snippet(plan, ttl=ZONE_SNIPPET_TTL):
    """Zone-file lines for the records to publish (absolute names)."""
    lines = []
    for record in plan:
        if record.publish:
            lines.append(f"{record.name}.\t{ttl}\tIN\t{record.rdtype}\t{record.zone_value}")
    return "\n".join(lines) + "\n"
