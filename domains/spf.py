"""
SPF (RFC 7208): build the record a domain should publish, and lint and evaluate the one it publishes.

`SpfWalker(query).walk(domain)` follows the published record through `include:` and `redirect=`,
counting DNS-querying terms (limit 10, §4.6.4) and void lookups (limit 2), collecting syntax errors,
and resolving `a`/`mx`/`ip4`/`ip6` into networks; `SpfReport.result_for(ip)` then tells what a receiver
would conclude for a sending IP (`pass`, `fail`, `softfail`, `neutral`). Macros and `ptr`/`exists`
cannot be evaluated without a real message: they count as lookups and never match.

`plan_errors(domain, extra_terms, include)` checks a domain's planned record before it is saved: what its
terms cost in DNS lookups (counted from the terms alone first, then through what they include) and void
lookups, with the RFC's limits; a DNS failure while counting is not held against the plan.
"""

import ipaddress
import re
from dataclasses import dataclass, field

from deliveryhub import dns as dh_dns

from .constants import SPF_MAX_DEPTH, SPF_MAX_DNS_LOOKUPS, SPF_MAX_MX_HOSTS, SPF_MAX_VOID_LOOKUPS

QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
LOOKUP_MECHANISMS = {"include", "a", "mx", "ptr", "exists"}
MECHANISMS = LOOKUP_MECHANISMS | {"all", "ip4", "ip6"}
_TERM = re.compile(r"^(?P<q>[+\-~?]?)(?P<name>[a-z0-9]+)(?P<rest>.*)$", re.IGNORECASE)
_MODIFIER = re.compile(r"^(?P<name>[a-z][a-z0-9_.-]*)=(?P<value>.*)$", re.IGNORECASE)
_CIDR = re.compile(r"^(?P<domain>:[^/]+)?(?:/(?P<v4>\d{1,2}))?(?://(?P<v6>\d{1,3}))?$")
WORK_CAP = 50  # lookups we perform at most, even when reporting how far past the limit a record goes


def is_spf(text):
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


def txt_values(result):
    """The TXT values of a dnspython answer, each one's strings joined."""
    if not result.ok:
        return []
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in result.answer]


def build_record(addresses, extra_terms="", include="", all_term="~all"):
    """The SPF record to publish: our IPs (or an `include:`), the admin's extra terms, then `~all`/`-all`."""
    terms = ["v=spf1"]
    if include:
        terms.append(f"include:{include}")
    else:
        for address in sorted(set(addresses), key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a))):
            terms.append(("ip6:" if ipaddress.ip_address(address).version == 6 else "ip4:") + address)
    terms += [term for term in extra_terms.split() if term]
    terms.append(all_term)
    return " ".join(terms)


def costs_a_lookup(term):
    """Whether an SPF term costs a DNS lookup by itself (RFC 7208 §4.6.4): include, a, mx, ptr, exists, redirect."""
    modifier = _MODIFIER.match(term)
    if modifier and modifier.group("name").lower() not in MECHANISMS:
        return modifier.group("name").lower() == "redirect"
    mechanism = _TERM.match(term)
    return bool(mechanism) and mechanism.group("name").lower() in LOOKUP_MECHANISMS


def lookup_terms(terms):
    """The terms of an SPF term list that cost a DNS lookup by themselves."""
    return [term for term in terms if costs_a_lookup(term)]


def plan_errors(domain, extra_terms, include="", *, query=None):
    """Why the SPF record planned for `domain` would fail at receivers (too many lookups or void lookups), or [].

    `extra_terms` are the admin's terms, `include` the platform's SPF include (settings.SPF_INCLUDE). The terms'
    own lookups are counted first, without the DNS; then the record is walked through the DNS to count the
    lookups inside what it includes. Our ip4:/ip6: terms cost nothing and are left out.
    """
    terms = ([f"include:{include}"] if include else []) + extra_terms.split()
    direct = lookup_terms(terms)
    if len(direct) > SPF_MAX_DNS_LOOKUPS:
        return [
            f"These terms need at least {len(direct)} DNS lookups ({', '.join(direct)}); a receiver does at most "
            f"{SPF_MAX_DNS_LOOKUPS} (RFC 7208 §4.6.4) and then fails SPF for all your mail (permerror). "
            "Use fewer include: terms or replace them by ip4:/ip6: networks."
        ]
    if not direct:
        return []
    report = SpfWalker(query).walk_record(domain, " ".join(["v=spf1", *terms, "~all"]))
    errors = []
    if report.lookups > SPF_MAX_DNS_LOOKUPS:
        nested = report.lookups - len(direct)
        errors.append(
            f"These terms need {report.lookups} DNS lookups ({len(direct)} for the terms themselves, {nested} inside "
            f"what they include); a receiver does at most {SPF_MAX_DNS_LOOKUPS} (RFC 7208 §4.6.4) and then fails SPF "
            "for all your mail (permerror). Use fewer include: terms or replace them by ip4:/ip6: networks."
        )
    if report.void_lookups > SPF_MAX_VOID_LOOKUPS:
        errors.append(
            f"{report.void_lookups} lookups of these terms find nothing in the DNS; more than {SPF_MAX_VOID_LOOKUPS} "
            "is a permanent error (RFC 7208 §4.6.4): remove the terms that name hosts or domains that do not exist."
        )
    return errors


@dataclass
class Policy:
    """One SPF record, resolved: ordered (qualifier, kind, networks-or-Policy) terms, `all`, `redirect`."""

    domain: str
    terms: list = field(default_factory=list)
    all: str | None = None
    redirect: "Policy | None" = None

    def evaluate(self, ip):
        for qualifier, kind, target in self.terms:
            if kind == "include":
                if target is not None and target.evaluate(ip) == "pass":
                    return QUALIFIERS[qualifier]
            elif any(ip.version == net.version and ip in net for net in target):
                return QUALIFIERS[qualifier]
        if self.all is not None:
            return QUALIFIERS[self.all]
        if self.redirect is not None:
            return self.redirect.evaluate(ip)
        return "neutral"


@dataclass
class SpfReport:
    """What walking a domain's SPF found."""

    domain: str
    records: list = field(default_factory=list)  # SPF records at the domain itself
    lookups: int = 0
    void_lookups: int = 0
    errors: list = field(default_factory=list)  # permanent problems (syntax, limits, duplicates, loops)
    temp_errors: list = field(default_factory=list)  # DNS failures while following the record
    warnings: list = field(default_factory=list)
    policy: Policy | None = None
    missing: bool = False  # no SPF record (or no such name)

    def result_for(self, address):
        if self.policy is None:
            return "none"
        return self.policy.evaluate(ipaddress.ip_address(address))


class SpfWalker:
    """Follows one domain's SPF record through the DNS (see the module docstring)."""

    def __init__(self, query=None):
        self.query = query or dh_dns.query

    def walk(self, domain):
        self._start(domain)
        result = self.query(domain, "TXT")
        if result.status == dh_dns.ERROR:
            self.report.temp_errors.append(f"TXT lookup of {domain} failed: {result.error}")
            return self.report
        records = [text for text in txt_values(result) if is_spf(text)]
        self.report.records = records
        if not records:
            self.report.missing = True
            return self.report
        if len(records) > 1:
            self.report.errors.append(
                f"{domain} publishes {len(records)} SPF records; receivers treat more than one as a permanent "
                "error (RFC 7208 §4.5): merge them into one."
            )
        self.report.policy = self._parse(domain, records[0], depth=0)
        return self._check_limits()

    def walk_record(self, domain, record):
        """Walk `record` as if `domain` published it (before it does): what it costs and what it authorises."""
        self._start(domain)
        self.report.records = [record]
        self.report.policy = self._parse(domain, record, depth=0)
        return self._check_limits()

    # -- internals ------------------------------------------------------------------------------------------------
    def _start(self, domain):
        self.report = SpfReport(domain)
        self._seen = set()

    def _check_limits(self):
        if self.report.lookups > SPF_MAX_DNS_LOOKUPS:
            self.report.errors.append(
                f"SPF needs {self.report.lookups} DNS lookups; the limit is {SPF_MAX_DNS_LOOKUPS} "
                "(RFC 7208 §4.6.4): receivers answer permerror. Replace includes by ip4:/ip6: terms."
            )
        if self.report.void_lookups > SPF_MAX_VOID_LOOKUPS:
            self.report.errors.append(
                f"SPF makes {self.report.void_lookups} lookups that find nothing; more than {SPF_MAX_VOID_LOOKUPS} "
                "is a permanent error (RFC 7208 §4.6.4): remove terms naming hosts that do not exist."
            )
        return self.report

    def _count(self):
        self.report.lookups += 1
        return self.report.lookups <= WORK_CAP

    def _void(self, result):
        if result.status in (dh_dns.NXDOMAIN, dh_dns.NODATA):
            self.report.void_lookups += 1
            return True
        if result.status == dh_dns.ERROR:
            self.report.temp_errors.append(f"lookup failed: {result.error}")
            return True
        return False

    def _fetch_policy(self, domain, depth, via):
        if depth >= SPF_MAX_DEPTH or domain in self._seen:
            self.report.errors.append(f"SPF {via}:{domain} loops or nests too deep.")
            return None
        result = self.query(domain, "TXT")
        if result.status == dh_dns.ERROR:
            self.report.temp_errors.append(f"TXT lookup of {domain} ({via}) failed: {result.error}")
            return None
        if result.status in (dh_dns.NXDOMAIN, dh_dns.NODATA):
            self.report.void_lookups += 1
        records = [text for text in txt_values(result) if is_spf(text)]
        if len(records) != 1:
            what = "no SPF record" if not records else f"{len(records)} SPF records"
            self.report.errors.append(f"{via}:{domain} has {what}: receivers answer permerror.")
            return None
        return self._parse(domain, records[0], depth + 1)

    def _parse(self, domain, record, depth):
        self._seen.add(domain)
        policy = Policy(domain)
        redirect = None
        for term in record.split()[1:]:
            modifier = _MODIFIER.match(term)
            if modifier and modifier.group("name").lower() not in MECHANISMS:
                name = modifier.group("name").lower()
                if name == "redirect":
                    if redirect is not None:
                        self.report.errors.append(f"{domain}: redirect= appears twice.")
                    redirect = modifier.group("value")
                elif name != "exp" and not re.match(r"^[a-z][a-z0-9_.-]*$", name):
                    self.report.errors.append(f"{domain}: '{term}' is not a valid modifier.")
                continue
            self._mechanism(domain, term, policy, depth)
        if redirect and policy.all is None and self._count():
            policy.redirect = self._fetch_policy(redirect, depth, "redirect")
        return policy

    def _mechanism(self, domain, term, policy, depth):
        match = _TERM.match(term)
        name = match.group("name").lower() if match else ""
        if not match or name not in MECHANISMS:
            self.report.errors.append(f"{domain}: '{term}' is not an SPF mechanism (syntax error).")
            return
        qualifier, rest = match.group("q") or "+", match.group("rest")
        if name == "all":
            if rest:
                self.report.errors.append(f"{domain}: '{term}' is not valid: 'all' takes no argument.")
            elif policy.all is None:
                policy.all = qualifier
                if qualifier == "+" and depth == 0:
                    self.report.errors.append(f"{domain}: '+all' authorises every host on the internet.")
            return
        if policy.all is not None:
            self.report.warnings.append(f"{domain}: '{term}' comes after 'all' and is never used.")
        if name in ("ip4", "ip6"):
            try:
                if not rest.startswith(":"):
                    raise ValueError
                network = ipaddress.ip_network(rest[1:], strict=False)
                if network.version != (4 if name == "ip4" else 6):
                    raise ValueError
            except ValueError:
                self.report.errors.append(f"{domain}: '{term}' is not a valid {name} network (syntax error).")
                return
            policy.terms.append((qualifier, name, [network]))
            return
        if name in ("include", "exists"):
            target = rest[1:] if rest.startswith(":") else ""
            if not target or "/" in target:
                self.report.errors.append(f"{domain}: '{term}' needs a domain ({name}:example.com).")
                return
            if not self._count():
                return
            if name == "include":
                policy.terms.append(
                    (qualifier, "include", None if "%" in target else self._fetch_policy(target, depth, "include"))
                )
            return
        # a, mx, ptr
        cidr = _CIDR.match(rest)
        if not cidr:
            self.report.errors.append(f"{domain}: '{term}' is not valid (syntax error).")
            return
        if not self._count():
            return
        target = (cidr.group("domain") or ":" + domain)[1:]
        if name == "ptr" or "%" in target:
            if name == "ptr":
                self.report.warnings.append(f"{domain}: 'ptr' is slow and discouraged (RFC 7208 §5.5).")
            return
        v4 = int(cidr.group("v4") or 32)
        v6 = int(cidr.group("v6") or 128)
        hosts = [target]
        if name == "mx":
            result = self.query(target, "MX")
            if self._void(result):
                return
            hosts = [rdata.exchange.to_text().rstrip(".") for rdata in result.answer][:SPF_MAX_MX_HOSTS]
        networks = []
        for host in hosts:
            found, failed = [], False
            for rdtype in ("A", "AAAA"):
                result = self.query(host, rdtype)
                if result.status == dh_dns.ERROR:
                    self.report.temp_errors.append(f"{rdtype} lookup of {host} failed: {result.error}")
                    failed = True
                found += [ipaddress.ip_address(r) for r in result.records] if result.ok else []
            if not found and not failed and name == "a":  # a failed lookup is unknown, not void
                self.report.void_lookups += 1
            networks += [ipaddress.ip_network(f"{ip}/{v4 if ip.version == 4 else v6}", strict=False) for ip in found]
        policy.terms.append((qualifier, name, networks))
