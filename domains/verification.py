"""
Checking a domain's record plan against the DNS: one `CheckResult` per planned record, each with a status
(`ok`, `missing`, `mismatch`, `invalid`, `error`) and a sentence a person understands.

A SERVFAIL or timeout is always `error` ("we could not tell"), never `missing`. Lookups go through
`deliveryhub.dns.query`, so tests point them at a loopback DNS server with settings.DNS_RESOLVERS.
"""

import ipaddress
from dataclasses import dataclass, field

import dns.reversename

from deliveryhub import dns as dh_dns

from . import keys, spf
from .choices import DmarcPolicy, DNSCheckStatus
from .constants import DMARC_TAGS, DMARC_URI_SCHEMES
from .plan import sending_ips

OK, MISSING, MISMATCH, INVALID, ERROR = (
    DNSCheckStatus.OK, DNSCheckStatus.MISSING, DNSCheckStatus.MISMATCH, DNSCheckStatus.INVALID, DNSCheckStatus.ERROR
)  # fmt: skip


@dataclass
class CheckResult:
    record: object  # plan.PlannedRecord
    status: str
    observed: str = ""
    explanation: str = ""
    warnings: list = field(default_factory=list)


class Checker:
    """Checks the records of one domain's plan, sharing lookups between checks (the DMARC record, SPF walks)."""

    def __init__(self, domain, query=None):
        self.domain = domain
        self.query = query or dh_dns.query
        self._cache = {}

    def lookup(self, name, rdtype):
        key = (name.lower(), rdtype)
        if key not in self._cache:
            self._cache[key] = self.query(name, rdtype)
        return self._cache[key]

    def check(self, record):
        method = getattr(self, f"check_{record.kind}")
        try:
            return method(record)
        except Exception as exc:
            return CheckResult(record, ERROR, explanation=f"Checking this record failed: {type(exc).__name__}: {exc}")

    @staticmethod
    def _dns_error(record, result):
        return CheckResult(
            record, ERROR,
            explanation=f"The DNS lookup of {record.name} ({record.rdtype}) failed ({result.error}); "
            "we will check again. This says nothing about whether the record is there.",
        )  # fmt: skip

    # -- ownership ------------------------------------------------------------------------------------------------
    def check_ownership(self, record):
        result = self.lookup(record.name, "TXT")
        if result.status == dh_dns.ERROR:
            return self._dns_error(record, result)
        values = spf.txt_values(result)
        tokens = [v for v in values if v.startswith("dh-verification=")]
        if record.value in values:
            return CheckResult(record, OK, record.value, "The ownership token is published.")
        if tokens:
            return CheckResult(
                record, MISMATCH, "\n".join(tokens), "A dh-verification token is published, but not this tenant's."
            )
        return CheckResult(record, MISSING, "", f"No TXT record {record.value!r} at {record.name}.")

    # -- SPF ------------------------------------------------------------------------------------------------------
    def check_spf(self, record):
        return self._check_spf(record, record.name, record.data)

    def check_return_path_spf(self, record):
        result = self._check_spf(record, record.name, self._sending_ips())
        if result.status == MISSING:
            result.explanation += (
                f" Bounced mail's envelope sender is at {record.name}: without SPF there, SPF cannot pass."
            )
        return result

    def _sending_ips(self):
        if "ips" not in self._cache:
            self._cache["ips"] = sending_ips(self.domain)
        return self._cache["ips"]

    def _check_spf(self, record, name, ips):
        report = spf.SpfWalker(self.lookup).walk(name)
        observed = "\n".join(report.records)
        if report.temp_errors and not report.records:
            return CheckResult(
                record, ERROR, observed, f"The SPF lookup failed ({report.temp_errors[0]}); we will check again."
            )
        if report.missing:
            return CheckResult(record, MISSING, observed, f"{name} publishes no SPF record (TXT starting v=spf1).")
        if report.errors:
            return CheckResult(record, INVALID, observed, " ".join(report.errors), report.warnings)
        if report.temp_errors:
            return CheckResult(
                record,
                ERROR,
                observed,
                f"Part of the SPF record could not be looked up ({report.temp_errors[0]}); we will check again.",
                report.warnings,
            )
        unauthorised = [ip.address for ip in (ips or []) if report.result_for(ip.address) != "pass"]
        warnings = list(report.warnings)
        if report.policy.all in ("?", None) and report.policy.redirect is None:
            warnings.append("The record does not end with ~all or -all: mail from other hosts gets a neutral result.")
        if unauthorised:
            what, it = ", ".join(unauthorised), "it" if len(unauthorised) == 1 else "them"
            return CheckResult(
                record, MISMATCH, observed,
                f"SPF does not authorise {what}: mail sent from {it} fails SPF. Add {it} (see the expected record).",
                warnings,
            )  # fmt: skip
        explanation = f"SPF authorises every IP this domain sends from ({report.lookups} of 10 DNS lookups used)."
        if not ips:
            explanation = f"SPF is valid ({report.lookups} of 10 DNS lookups); no sending IPs are assigned yet."
        return CheckResult(record, OK, observed, explanation, warnings)

    # -- DKIM -----------------------------------------------------------------------------------------------------
    def check_dkim(self, record):
        key = record.data
        result = self.lookup(record.name, "TXT")
        if result.status == dh_dns.ERROR:
            return self._dns_error(record, result)
        values = spf.txt_values(result)
        if not values:
            return CheckResult(record, MISSING, "", f"No DKIM record at {record.name}: publish the TXT record shown.")
        dkim_values = [v for v in values if "p=" in v]
        if len(dkim_values) > 1:
            return CheckResult(record, INVALID, "\n".join(values),
                               f"{record.name} has {len(dkim_values)} DKIM records: receivers cannot tell which "
                               "one to use. Keep only the one shown.")  # fmt: skip
        if not dkim_values:
            return CheckResult(record, INVALID, "\n".join(values), f"The TXT record at {record.name} has no p= tag.")
        observed = dkim_values[0]
        tags, _order, errors = keys.parse_tags(observed)
        if errors:
            return CheckResult(record, INVALID, observed, "The DKIM record is malformed: " + "; ".join(errors) + ".")
        if tags.get("v", "DKIM1") != "DKIM1":
            return CheckResult(record, INVALID, observed, "v= must be DKIM1 when present.")
        published = keys.public_key_from_record(tags)
        if not published:
            return CheckResult(record, INVALID, observed, "The record has an empty p=: the key is revoked.")
        if tags.get("k", "rsa").lower() != keys.key_type_tag(key.algorithm):
            return CheckResult(record, MISMATCH, observed, f"The record says k={tags.get('k', 'rsa')}, but this "
                               f"key is {keys.key_type_tag(key.algorithm)}.")  # fmt: skip
        if published != key.public_key:
            return CheckResult(
                record,
                MISMATCH,
                observed,
                f"{record.name} publishes a different public key: "
                "mail signed with this key would fail DKIM. Replace the record's p= value.",
            )
        return CheckResult(
            record, OK, observed, f"The {key.label} key (selector {key.selector}) is published correctly."
        )

    # -- DMARC ----------------------------------------------------------------------------------------------------
    def published_dmarc(self):
        """(status, the DMARC record text or None, its tags, errors, warnings) at _dmarc.<domain>."""
        if "dmarc" in self._cache:
            return self._cache["dmarc"]
        result = self.lookup(f"_dmarc.{self.domain.name}", "TXT")
        if result.status == dh_dns.ERROR:
            answer = (ERROR, None, {}, [result.error], [])
        else:
            values = spf.txt_values(result)
            records = [v for v in values if v.lower().startswith("v=dmarc1")]
            misplaced = [v for v in values if "v=dmarc1" in v.lower().replace(" ", "")]
            if not records and misplaced:
                answer = (INVALID, "\n".join(misplaced), {}, [
                    "It must start with v=DMARC1: receivers ignore a record that does not, so no DMARC policy applies."
                ], [])  # fmt: skip
            elif not records:
                answer = (MISSING, None, {}, [], [])
            elif len(records) > 1:
                duplicate = (
                    f"{len(records)} DMARC records are published: receivers ignore DMARC when there is more than one."
                )
                answer = (INVALID, "\n".join(records), {}, [duplicate], [])
            else:
                tags, errors, warnings = lint_dmarc(records[0])
                answer = (INVALID if errors else OK, records[0], tags, errors, warnings)
        self._cache["dmarc"] = answer
        return answer

    def check_dmarc(self, record):
        status, observed, tags, errors, lint_warnings = self.published_dmarc()
        domain = self.domain
        if status == ERROR:
            return CheckResult(
                record,
                ERROR,
                "",
                f"The DNS lookup of {record.name} failed ({errors[0]}); we will "
                "check again. This says nothing about whether the record is there.",
            )
        if status == MISSING:
            return CheckResult(
                record,
                MISSING,
                "",
                f"No DMARC record at {record.name}: receivers apply no policy and "
                "send no reports; Gmail and Yahoo require one from bulk senders.",
            )
        if status == INVALID:
            return CheckResult(record, INVALID, observed, "The DMARC record is invalid: " + " ".join(errors))
        warnings = list(lint_warnings)
        policy = tags.get("p", "").lower()
        if policy == DmarcPolicy.NONE:
            text = "DMARC p=none: receivers take no action on spoofed mail."
            if domain.bulk_sender:
                text += " As a bulk sender, move to quarantine or reject once reports show your mail aligns."
            warnings.append(text)
        wanted_rua = {a.strip().lower() for a in domain.dmarc_rua.split(",") if a.strip()}
        published_rua = {u.strip().lower().removeprefix("mailto:").split("!")[0] for u in tags.get("rua", "").split(",")
                         if u.strip()}  # fmt: skip
        problems = []
        if policy != domain.dmarc_policy:
            problems.append(f"it publishes p={policy or '(none)'}, you chose p={domain.dmarc_policy}")
        if wanted_rua - published_rua:
            problems.append("rua lacks " + ", ".join(sorted(wanted_rua - published_rua)))
        if problems:
            return CheckResult(
                record,
                MISMATCH,
                observed,
                "The DMARC record differs from the plan: " + "; ".join(problems) + ".",
                warnings,
            )
        return CheckResult(record, OK, observed, f"DMARC is published with p={policy}.", warnings)

    def check_alignment(self, record):
        status, _observed, tags, _errors, _warnings = self.published_dmarc()
        domain = self.domain
        if status == ERROR:
            return CheckResult(record, ERROR, "", "The DMARC record could not be looked up; alignment is unknown.")
        aspf = tags.get("aspf", "r").lower() if status == OK else "r"
        adkim = tags.get("adkim", "r").lower() if status == OK else "r"
        observed_text = f"adkim={adkim}; aspf={aspf}" + ("" if status == OK else " (defaults: no valid DMARC record)")
        mode = "strict" if adkim == "s" else "relaxed"
        dkim_note = f"DKIM signs with d={domain.name}, the From domain itself: aligned in {mode} mode."
        if aspf == "s":
            return CheckResult(
                record,
                MISMATCH,
                observed_text,
                dkim_note + f" SPF is checked for the return path "
                f"{domain.return_path_host}, a subdomain: strict SPF alignment (aspf=s) fails, so "
                "DMARC passes through DKIM alone. Use aspf=r (relaxed) unless you mean that.",
            )
        return CheckResult(
            record,
            OK,
            observed_text,
            dkim_note + f" The return path {domain.return_path_host} is "
            f"below {domain.name}: SPF aligns in relaxed mode. DMARC can pass through either.",
        )

    # -- return path MX -------------------------------------------------------------------------------------------
    def check_return_path_mx(self, record):
        result = self.lookup(record.name, "MX")
        if result.status == dh_dns.ERROR:
            return self._dns_error(record, result)
        if not result.ok:
            return CheckResult(
                record,
                MISSING,
                "",
                f"{record.name} has no MX record: bounces to it get lost or go to its A record. Publish the MX shown.",
            )
        wanted = record.value.split()[-1].rstrip(".").lower()
        exchanges = [(r.preference, r.exchange.to_text().rstrip(".").lower()) for r in result.answer]
        observed = "\n".join(f"{p} {e}." for p, e in sorted(exchanges))
        if wanted in {e for _p, e in exchanges}:
            return CheckResult(record, OK, observed, f"Bounces to {record.name} reach {wanted}.")
        return CheckResult(
            record,
            MISMATCH,
            observed,
            f"The MX of {record.name} points elsewhere: bounces would not "
            f"reach {wanted}, so bounced addresses are never suppressed.",
        )

    # -- PTR ------------------------------------------------------------------------------------------------------
    def check_ptr(self, record):
        ip = record.data
        address = ipaddress.ip_address(ip.address)
        reverse = dns.reversename.from_address(str(address)).to_text().rstrip(".")
        result = self.lookup(reverse, "PTR")
        if result.status == dh_dns.ERROR:
            return self._dns_error(record, result)
        if not result.ok:
            return CheckResult(
                record,
                MISSING,
                "",
                f"{ip.address} has no PTR record: many receivers reject mail from "
                "IPs without reverse DNS. Ask the IP's provider to set it"
                + (f" to {ip.ehlo_hostname}." if ip.ehlo_hostname else "."),
            )
        names = [r.target.to_text().rstrip(".").lower() for r in result.answer]
        observed = "\n".join(names)
        rdtype = "AAAA" if address.version == 6 else "A"
        errors = []
        for name in names:
            forward = self.lookup(name, rdtype)
            if forward.status == dh_dns.ERROR:
                errors.append(forward.error)
                continue
            if forward.ok and address in {ipaddress.ip_address(r) for r in forward.records}:
                warnings = []
                if ip.ehlo_hostname and name != ip.ehlo_hostname.lower().rstrip("."):
                    warnings.append(f"The PTR name {name} differs from the EHLO name {ip.ehlo_hostname}.")
                return CheckResult(
                    record, OK, observed, f"{ip.address} → {name} → {ip.address}: forward-confirmed.", warnings
                )
        if errors:
            return CheckResult(record, ERROR, observed, f"The forward lookup of {names[0]} failed ({errors[0]}).")
        return CheckResult(
            record,
            MISMATCH,
            observed,
            f"The PTR of {ip.address} is {names[0]}, but {names[0]} does not "
            f"resolve back to {ip.address}: forward-confirmed reverse DNS fails.",
        )

    # -- MTA-STS and TLS-RPT ----------------------------------------------------------------------------------------
    def check_mta_sts(self, record):
        if record.rdtype == "CNAME":
            result = self.lookup(record.name, "A")
            if result.status == dh_dns.ERROR:
                return self._dns_error(record, result)
            if not result.ok:
                return CheckResult(
                    record, MISSING, "", f"{record.name} does not resolve: senders cannot fetch the policy."
                )
            return CheckResult(
                record,
                OK,
                "\n".join(result.records),
                f"{record.name} resolves; it must serve the policy over HTTPS with a valid certificate.",
            )
        return self._check_tag_record(record, "v=stsv1", "id", "MTA-STS")

    def check_tls_rpt(self, record):
        return self._check_tag_record(record, "v=tlsrptv1", "rua", "TLS-RPT")

    def _check_tag_record(self, record, version, required_tag, label):
        result = self.lookup(record.name, "TXT")
        if result.status == dh_dns.ERROR:
            return self._dns_error(record, result)
        values = [v for v in spf.txt_values(result) if v.lower().replace(" ", "").startswith(version)]
        if not values:
            return CheckResult(record, MISSING, "", f"No {label} record at {record.name}.")
        if len(values) > 1:
            return CheckResult(record, INVALID, "\n".join(values), f"{len(values)} {label} records: keep one.")
        tags, _order, errors = keys.parse_tags(values[0])
        if errors or not tags.get(required_tag):
            return CheckResult(record, INVALID, values[0], f"The {label} record needs {required_tag}=.")
        return CheckResult(record, OK, values[0], f"The {label} record is published.")


def lint_dmarc(text):
    """(tags, errors, warnings) of a DMARC record: v=DMARC1 first, known tags, valid p/sp/pct/adkim/aspf/rua/ruf."""
    tags, order, errors = keys.parse_tags(text)
    if not order or order[0] != "v" or tags.get("v") != "DMARC1":
        errors.append("It must start with v=DMARC1.")
    policies = {p.value for p in DmarcPolicy}
    if "p" not in tags:
        errors.append("The p= tag (none, quarantine or reject) is missing.")
    for tag in ("p", "sp", "np"):
        if tag in tags and tags[tag].lower() not in policies:
            errors.append(f"{tag}={tags[tag]} is not none, quarantine or reject.")
    if "pct" in tags and not (tags["pct"].isdigit() and 0 <= int(tags["pct"]) <= 100):
        errors.append(f"pct={tags['pct']} must be a whole number from 0 to 100.")
    for tag in ("adkim", "aspf"):
        if tag in tags and tags[tag].lower() not in ("r", "s"):
            errors.append(f"{tag}={tags[tag]} must be r (relaxed) or s (strict).")
    for tag in ("rua", "ruf"):
        for uri in (u.strip() for u in tags.get(tag, "").split(",") if tag in tags):
            if not uri.lower().startswith(DMARC_URI_SCHEMES) or (uri.lower().startswith("mailto:") and "@" not in uri):
                errors.append(f"{tag} URI {uri!r} is not a mailto: address.")
    if "ri" in tags and not tags["ri"].isdigit():
        errors.append(f"ri={tags['ri']} must be a number of seconds.")
    unknown = [tag for tag in order if tag not in DMARC_TAGS]
    warnings = ["Unknown tags (receivers ignore them): " + ", ".join(unknown) + "."] if unknown else []
    return tags, errors, warnings
