"""Test helpers of the domains app: a loopback DNS server wired into settings, and zones built from a plan."""

from django.test import override_settings

from deliveryhub.testing.cases import TenantTestCase
from deliveryhub.testing.dns import DNSServer

from .keys import quote_txt
from .plan import record_plan

BOUNCE_MX = "mx.deliveryhub.test"


def zone_lines(domain, skip=(), replace=None):
    """Zone-file lines (absolute names) publishing the domain's whole plan, except kinds in `skip`;
    `replace` maps a kind to replacement lines."""
    replace = replace or {}
    lines = []
    for record in record_plan(domain):
        if not record.publish or record.kind in skip or record.kind in replace:
            continue
        value = quote_txt(record.value) if record.rdtype == "TXT" else record.value
        lines.append(f"{record.name}. 300 IN {record.rdtype} {value}")
    for extra in replace.values():
        lines += list(extra)
    return "\n".join(lines)


class DNSTestCase(TenantTestCase):
    """A TenantTestCase with a real authoritative DNS server on loopback that the app's resolvers ask."""

    dns_timeout = 1.0

    @classmethod
    def setUpClass(cls):
        cls.dns = DNSServer().start()
        cls._dns_settings = override_settings(
            DNS_RESOLVERS=[cls.dns.address], DNS_TIMEOUT=cls.dns_timeout, BOUNCE_MX_HOST=BOUNCE_MX, SPF_INCLUDE=""
        )
        cls._dns_settings.enable()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls._dns_settings.disable()
        cls.dns.stop()

    def setUp(self):
        super().setUp()
        for origin in list(self.dns._zones):
            self.dns.remove_zone(origin.to_text())
        self.dns.clear_faults()
        self.dns.set_zone(BOUNCE_MX, "@ IN A 127.0.0.1")

    def publish(self, domain, *extra, skip=(), replace=None):
        """Serve the domain's zone: its whole plan (minus `skip`), plus `extra` zone lines."""
        text = zone_lines(domain, skip=skip, replace=replace)
        self.dns.set_zone(domain.name, text + "\n" + "\n".join(extra))
