"""A domain's planned SPF record is refused on the field when its terms cost more DNS lookups than receivers do
(RFC 7208 §4.6.4: 10 lookups, 2 void lookups), counted from the terms and through what they include."""

from django.test import override_settings

from deliveryhub.testing.cases import login_verified
from domains import services, spf
from domains.models import SendingDomain
from domains.testing import DNSTestCase

URL = "/api/v1/domains/"


class SpfPlanLookupsTest(DNSTestCase):
    def post(self, terms, name="plan.example.test"):
        return self.api(self.alice_key).post(URL, {"name": name, "spf_extra_terms": terms}, format="json")

    def field_error(self, response):
        self.assertEqual(response.status_code, 400, response.content)
        return " ".join(response.json()["error"]["fields"]["spf_extra_terms"])

    def serve_includes(self, names, inner_includes=0):
        for name in names:
            inner = " ".join(f"include:in{i}.{name}" for i in range(inner_includes))
            lines = [f'@ IN TXT "v=spf1 {inner} ip4:192.0.2.0/24 -all"']
            lines += [f'in{i} IN TXT "v=spf1 ip4:198.51.100.{i}/32 -all"' for i in range(inner_includes)]
            self.dns.set_zone(name, "\n".join(lines))

    def test_twenty_includes_are_refused_without_asking_the_dns(self):
        terms = " ".join(f"include:s{n}.p.test" for n in range(20))
        self.dns.queries.clear()
        message = self.field_error(self.post(terms))
        self.assertIn("These terms need at least 20 DNS lookups", message)
        self.assertIn("at most 10 (RFC 7208 §4.6.4)", message)
        self.assertEqual(self.dns.queries, [])
        self.assertFalse(SendingDomain.objects.filter(name="plan.example.test").exists())

    def test_lookups_inside_includes_count(self):
        names = [f"p{n}.partner.test" for n in range(3)]
        self.serve_includes(names, inner_includes=4)  # 3 terms, each with 4 includes inside: 15 lookups
        message = self.field_error(self.post(" ".join(f"include:{name}" for name in names)))
        self.assertIn("need 15 DNS lookups (3 for the terms themselves, 12 inside what they include)", message)
        self.serve_includes(names, inner_includes=2)  # 9: within the limit
        self.assertEqual(self.post(" ".join(f"include:{name}" for name in names)).status_code, 201)

    def test_void_lookups_are_refused(self):
        self.dns.set_zone("partner.test", "ok IN A 192.0.2.1")  # the names answer NXDOMAIN
        message = self.field_error(self.post("a:gone1.partner.test a:gone2.partner.test a:gone3.partner.test",
                                             name="void.example.test"))  # fmt: skip
        self.assertIn("3 lookups of these terms find nothing in the DNS; more than 2", message)

    def test_a_dns_failure_while_counting_is_not_held_against_the_plan(self):
        self.dns.servfail("partner.test")
        self.assertEqual(self.post("include:_spf.partner.test").status_code, 201)

    @override_settings(SPF_INCLUDE="_spf.deliveryhub.test")
    def test_the_platforms_include_counts_too_and_updates_are_checked(self):
        domain = services.create_domain(self.tenant_a, "upd.example.test")
        terms = " ".join(f"include:_spf{n}.partner.test" for n in range(10))  # 10 + ours = 11
        response = self.api(self.alice_key).patch(f"{URL}{domain.pk}/", {"spf_extra_terms": terms}, format="json")
        self.assertIn("at least 11 DNS lookups (include:_spf.deliveryhub.test, ", self.field_error(response))
        domain.refresh_from_db()
        self.assertEqual(domain.spf_extra_terms, "")

    def test_ui_form_shows_the_error_on_the_field(self):
        domain = services.create_domain(self.tenant_a, "ui.example.test")
        login_verified(self.client, self.alice)
        data = {"return_path_subdomain": "bounces", "dmarc_policy": "none", "dmarc_alignment": "r", "spf_all": "~all",
                "spf_extra_terms": " ".join(f"include:s{n}.partner.test" for n in range(12)),
                "tls_policy": "opportunistic", "mta_sts_mode": ""}  # fmt: skip
        response = self.client.post(f"/domains/{domain.pk}/settings/", data)
        self.assertContains(response, "These terms need at least 12 DNS lookups", status_code=400)

    def test_lookup_terms_are_the_ones_rfc_7208_counts(self):
        terms = "include:a.test a mx:b.test ptr exists:%{i}.c.test ip4:192.0.2.1 ip6:2001:db8::1 -all redirect=d.test"
        self.assertEqual(spf.lookup_terms(terms.split()), ["include:a.test", "a", "mx:b.test", "ptr",
                                                          "exists:%{i}.c.test", "redirect=d.test"])  # fmt: skip
