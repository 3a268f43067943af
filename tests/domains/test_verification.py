"""Verification against a real authoritative DNS server on loopback: every record kind, right and wrong."""

from django.test import override_settings

from deliveryhub.models import AuditEntry
from deliveryhub.testing.dns import txt_strings
from domains import services
from domains.choices import DkimKeyState, DomainStatus, RecordKind
from domains.models import DnsCheck
from domains.signals import domain_status_changed
from domains.testing import DNSTestCase
from ippools.testing import make_ip, make_node, make_pool

OK, MISSING, MISMATCH, INVALID, ERROR = "ok", "missing", "mismatch", "invalid", "error"


class VerificationTest(DNSTestCase):
    def setUp(self):
        super().setUp()
        self.domain = services.create_domain(self.tenant_a, "example.test", dmarc_rua="dmarc@example.test")

    def verify(self, domain=None):
        domain = domain or self.domain
        checks = {(c.kind, c.subject): c for c in services.verify_domain(domain)}
        domain.refresh_from_db()
        return checks

    def check(self, checks, kind, subject=""):
        return checks[(kind, subject)]

    def add_ips(self, *addresses):
        node = make_node("node-1")
        ips = [make_ip(address, node, ehlo=f"mta{n}.mta.test") for n, address in enumerate(addresses, 1)]
        make_pool("shared", all_tenants=True, members=[(ip, 100) for ip in ips])
        return ips

    # -- the happy path -------------------------------------------------------------------------------------------
    def test_correct_records_verify_and_activate_the_key(self):
        self.publish(self.domain)
        checks = self.verify()
        for kind in (
            RecordKind.SPF,
            RecordKind.DMARC,
            RecordKind.RETURN_PATH_MX,
            RecordKind.RETURN_PATH_SPF,
            RecordKind.ALIGNMENT,
            RecordKind.OWNERSHIP,
        ):
            self.assertEqual(self.check(checks, kind).status, OK, self.check(checks, kind).explanation)
        key = self.domain.dkim_keys.get()
        self.assertEqual(self.check(checks, RecordKind.DKIM, key.selector).status, OK)
        key.refresh_from_db()
        self.assertEqual(key.state, DkimKeyState.ACTIVE)
        self.assertEqual(self.domain.status, DomainStatus.VERIFIED)
        self.assertEqual(self.domain.can_send(), (True, ""))
        self.assertEqual(services.signing_keys(self.domain), [key])
        self.assertEqual(DnsCheck.objects.filter(domain=self.domain).count(), len(checks))

    def test_status_change_is_audited_and_signalled(self):
        received = []

        def receiver(sender, domain, before, after, **kwargs):
            received.append((domain.name, before, after))

        domain_status_changed.connect(receiver)
        self.addCleanup(domain_status_changed.disconnect, receiver)
        self.publish(self.domain)
        with self.captureOnCommitCallbacks(execute=True):
            self.verify()
        entry = AuditEntry.objects.filter(action="domain.dns_status_changed", object_id=str(self.domain.pk)).get()
        self.assertEqual(entry.prechange, {"status": "pending"})
        self.assertEqual(entry.postchange, {"status": "verified"})
        self.assertEqual(entry.tenant_id, self.tenant_a.pk)
        self.assertEqual(received, [("example.test", "pending", "verified")])
        self.assertTrue(AuditEntry.objects.filter(action="dkim.activate", tenant=self.tenant_a).exists())
        # the same result again changes nothing and audits nothing
        with self.captureOnCommitCallbacks(execute=True):
            self.verify()
        self.assertEqual(AuditEntry.objects.filter(action="domain.dns_status_changed").count(), 1)
        self.assertEqual(len(received), 1)

    # -- missing and wrong ----------------------------------------------------------------------------------------
    def test_missing_records_are_missing_and_block_sending(self):
        self.dns.set_zone(self.domain.name, "www IN A 192.0.2.1")
        checks = self.verify()
        key = self.domain.dkim_keys.get()
        for kind, subject in (
            (RecordKind.SPF, ""),
            (RecordKind.DKIM, key.selector),
            (RecordKind.DMARC, ""),
            (RecordKind.RETURN_PATH_MX, ""),
            (RecordKind.RETURN_PATH_SPF, ""),
        ):
            self.assertEqual(self.check(checks, kind, subject).status, MISSING, kind)
        self.assertIn("No DKIM record", self.check(checks, RecordKind.DKIM, key.selector).explanation)
        self.assertEqual(self.domain.status, DomainStatus.PENDING)
        allowed, reason = self.domain.can_send()
        self.assertFalse(allowed)
        self.assertIn("DKIM record at", reason)
        self.assertIn(key.dns_name, reason)
        self.assertEqual(services.signing_keys(self.domain), [])

    def test_admin_may_allow_unverified_sending(self):
        services.update_domain(self.domain, allow_unverified_sending=True)
        self.assertEqual(self.domain.can_send(), (True, ""))
        self.assertTrue(
            AuditEntry.objects.filter(
                action="update", object_id=str(self.domain.pk), postchange__allow_unverified_sending=True
            ).exists()
        )

    def test_wrong_dkim_key_is_a_mismatch(self):
        key = self.domain.dkim_keys.get()
        other = services.create_domain(self.tenant_b, "other.test").dkim_keys.get()
        wrong = f"{key.dns_name}. 300 IN TXT {txt_strings(other.dns_txt_value())}"
        self.publish(self.domain, wrong, skip=(RecordKind.DKIM,))
        checks = self.verify()
        check = self.check(checks, RecordKind.DKIM, key.selector)
        self.assertEqual(check.status, MISMATCH)
        self.assertIn("different public key", check.explanation)
        self.assertEqual(self.domain.status, DomainStatus.PENDING)
        key.refresh_from_db()
        self.assertEqual(key.state, DkimKeyState.PENDING)

    def test_dkim_record_split_into_255_byte_strings_and_fetched_over_tcp(self):
        big = services.rotate_dkim_key(self.domain, bits=4096)
        strings = big.dns_txt_strings()
        self.assertGreater(len(strings), 2)
        self.assertTrue(all(len(s) <= 255 for s in strings))
        planned = next(r for r in services.record_plan(self.domain) if r.subject == big.selector)
        self.assertIn('" "', planned.zone_value)  # several quoted strings in the zone snippet
        self.publish(self.domain)
        self.dns.queries.clear()
        checks = self.verify()
        self.assertEqual(self.check(checks, RecordKind.DKIM, big.selector).status, OK)
        self.assertIn((big.dns_name, "TXT", "tcp"), self.dns.queries)  # truncated over UDP, retried over TCP

    def test_spf_not_authorising_a_sending_ip(self):
        self.add_ips("203.0.113.7", "2001:db8::25")
        self.publish(
            self.domain, replace={RecordKind.SPF: [f'{self.domain.name}. IN TXT "v=spf1 ip6:2001:db8::/64 ~all"']}
        )
        checks = self.verify()
        spf = self.check(checks, RecordKind.SPF)
        self.assertEqual(spf.status, MISMATCH)
        self.assertIn("SPF does not authorise 203.0.113.7", spf.explanation)
        self.assertEqual(self.domain.status, DomainStatus.WARNING)  # DKIM verified: may send, needs attention
        self.assertTrue(self.domain.can_send()[0])

    def test_spf_plan_lists_pool_ips_extra_terms_and_all(self):
        self.add_ips("203.0.113.7", "2001:db8::25")
        services.update_domain(
            self.domain, spf_extra_terms="include:_spf.partner.test ip4:198.51.100.0/24", spf_all="-all"
        )
        spf = next(r for r in services.record_plan(self.domain) if r.kind == RecordKind.SPF)
        self.assertEqual(
            spf.value, "v=spf1 ip4:203.0.113.7 ip6:2001:db8::25 include:_spf.partner.test ip4:198.51.100.0/24 -all"
        )
        with override_settings(SPF_INCLUDE="_spf.deliveryhub.test"):
            spf = next(r for r in services.record_plan(self.domain) if r.kind == RecordKind.SPF)
        self.assertTrue(spf.value.startswith("v=spf1 include:_spf.deliveryhub.test include:_spf.partner.test"))
        # published as planned, with the partner's include resolvable: ok
        self.dns.set_zone("_spf.partner.test", '@ IN TXT "v=spf1 ip4:192.0.2.0/24 -all"')
        self.publish(self.domain)
        self.assertEqual(self.check(self.verify(), RecordKind.SPF).status, OK)

    def test_spf_authorisation_through_include_and_a_mechanisms(self):
        self.add_ips("203.0.113.7")
        self.dns.set_zone("provider.test", 'spf IN TXT "v=spf1 a:out.provider.test -all"\nout IN A 203.0.113.7')
        self.publish(
            self.domain,
            replace={RecordKind.SPF: [f'{self.domain.name}. IN TXT "v=spf1 include:spf.provider.test ~all"']},
        )
        spf = self.check(self.verify(), RecordKind.SPF)
        self.assertEqual(spf.status, OK, spf.explanation)
        self.assertIn("2 of 10", spf.explanation)

    def test_duplicated_spf_is_invalid(self):
        self.publish(self.domain, f'{self.domain.name}. IN TXT "v=spf1 ip4:192.0.2.1 -all"')
        spf = self.check(self.verify(), RecordKind.SPF)
        self.assertEqual(spf.status, INVALID)
        self.assertIn("2 SPF records", spf.explanation)

    def test_spf_over_the_lookup_limit(self):
        includes = " ".join(f"include:s{i}.spf.test" for i in range(12))
        self.dns.set_zone("spf.test", "\n".join(f's{i} IN TXT "v=spf1 ip4:192.0.2.{i} -all"' for i in range(12)))
        self.publish(self.domain, replace={RecordKind.SPF: [f'{self.domain.name}. IN TXT "v=spf1 {includes} ~all"']})
        spf = self.check(self.verify(), RecordKind.SPF)
        self.assertEqual(spf.status, INVALID)
        self.assertIn("SPF needs 12 DNS lookups; the limit is 10", spf.explanation)

    def test_spf_void_lookups_and_syntax_errors(self):
        terms = "a:gone1.spf.test a:gone2.spf.test a:gone3.spf.test"
        self.dns.set_zone("spf.test", "www IN A 192.0.2.1")
        self.publish(self.domain, replace={RecordKind.SPF: [f'{self.domain.name}. IN TXT "v=spf1 {terms} -all"']})
        spf = self.check(self.verify(), RecordKind.SPF)
        self.assertEqual(spf.status, INVALID)
        self.assertIn("3 lookups that find nothing", spf.explanation)
        self.publish(
            self.domain, replace={RecordKind.SPF: [f'{self.domain.name}. IN TXT "v=spf1 ip4:300.1.1.1 foo:bar ~all"']}
        )
        spf = self.check(self.verify(), RecordKind.SPF)
        self.assertEqual(spf.status, INVALID)
        self.assertIn("'ip4:300.1.1.1' is not a valid ip4 network", spf.explanation)
        self.assertIn("'foo:bar' is not an SPF mechanism", spf.explanation)

    def test_spf_lookup_failures_are_errors_not_void_lookups(self):
        terms = "a:down1.broken.test a:down2.broken.test a:down3.broken.test"
        self.dns.servfail("broken.test")
        self.publish(self.domain, replace={RecordKind.SPF: [f'{self.domain.name}. IN TXT "v=spf1 {terms} -all"']})
        spf = self.check(self.verify(), RecordKind.SPF)
        self.assertEqual(spf.status, ERROR, spf.explanation)  # unknown, neither invalid (void) nor missing
        self.assertIn("could not be looked up", spf.explanation)
        self.dns.clear_faults()
        self.dns.set_zone("broken.test", "www IN A 192.0.2.1")  # now the names really do not exist
        self.assertEqual(self.check(self.verify(), RecordKind.SPF).status, INVALID)

    def test_spf_include_servfail_is_an_error(self):
        self.add_ips("203.0.113.7")
        self.dns.servfail("provider.test")
        self.publish(
            self.domain,
            replace={RecordKind.SPF: [f'{self.domain.name}. IN TXT "v=spf1 include:spf.provider.test ~all"']},
        )
        spf = self.check(self.verify(), RecordKind.SPF)
        self.assertEqual(spf.status, ERROR, spf.explanation)
        self.assertNotIn("does not authorise", spf.explanation)

    # -- DMARC ----------------------------------------------------------------------------------------------------
    def test_dmarc_p_none_warns_and_policy_mismatch(self):
        services.update_domain(self.domain, bulk_sender=True)
        self.publish(self.domain)
        dmarc = self.check(self.verify(), RecordKind.DMARC)
        self.assertEqual(dmarc.status, OK)
        self.assertIn("DMARC p=none: receivers take no action on spoofed mail.", dmarc.warnings[0])
        self.assertIn("bulk sender", dmarc.warnings[0])
        self.assertEqual(dmarc.badge, "warning")
        services.update_domain(self.domain, dmarc_policy="reject")  # the plan changed, DNS did not
        self.publish(
            self.domain,
            replace={
                RecordKind.DMARC: [
                    f'_dmarc.{self.domain.name}. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.test"'
                ]
            },
        )
        dmarc = self.check(self.verify(), RecordKind.DMARC)
        self.assertEqual(dmarc.status, MISMATCH)
        self.assertIn("it publishes p=none, you chose p=reject", dmarc.explanation)

    def test_dmarc_lint(self):
        bad = '"p=reject; v=DMARC1; pct=150; rua=dmarc@example.test; adkim=x"'
        self.publish(self.domain, replace={RecordKind.DMARC: [f"_dmarc.{self.domain.name}. IN TXT {bad}"]})
        dmarc = self.check(self.verify(), RecordKind.DMARC)
        self.assertEqual(dmarc.status, INVALID)  # receivers ignore it: say why rather than "missing"
        self.assertIn("It must start with v=DMARC1", dmarc.explanation)
        self.assertIn("p=reject; v=DMARC1", dmarc.observed)
        bad = '"v=DMARC1; p=maybe; pct=150; rua=dmarc@example.test; adkim=x"'
        self.publish(self.domain, replace={RecordKind.DMARC: [f"_dmarc.{self.domain.name}. IN TXT {bad}"]})
        dmarc = self.check(self.verify(), RecordKind.DMARC)
        self.assertEqual(dmarc.status, INVALID)
        for text in ("p=maybe", "pct=150 must be a whole number from 0 to 100", "is not a mailto: address", "adkim=x"):
            self.assertIn(text, dmarc.explanation)

    def test_strict_spf_alignment_is_explained(self):
        self.publish(
            self.domain,
            replace={
                RecordKind.DMARC: [
                    f'_dmarc.{self.domain.name}. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.test; aspf=s"'
                ]
            },
        )
        alignment = self.check(self.verify(), RecordKind.ALIGNMENT)
        self.assertEqual(alignment.status, MISMATCH)
        self.assertIn("strict SPF alignment (aspf=s) fails", alignment.explanation)
        self.assertIn("DKIM signs with d=example.test", alignment.explanation)

    def test_return_path_mx_pointing_elsewhere(self):
        self.publish(
            self.domain,
            replace={RecordKind.RETURN_PATH_MX: [f"{self.domain.return_path_host}. IN MX 10 mail.elsewhere.test."]},
        )
        mx = self.check(self.verify(), RecordKind.RETURN_PATH_MX)
        self.assertEqual(mx.status, MISMATCH)
        self.assertIn("bounces would not reach mx.deliveryhub.test", mx.explanation)

    # -- PTR ------------------------------------------------------------------------------------------------------
    def test_ptr_forward_confirmed_and_not(self):
        good, _bad = self.add_ips("203.0.113.7", "203.0.113.8")
        self.dns.set_zone("mta.test", "mta1 IN A 203.0.113.7\nliar IN A 192.0.2.99")
        self.dns.set_ptr("203.0.113.7", good.ehlo_hostname)
        self.dns.set_ptr("203.0.113.8", "liar.mta.test")
        self.publish(self.domain)
        checks = self.verify()
        self.assertEqual(self.check(checks, RecordKind.PTR, "203.0.113.7").status, OK)
        ptr = self.check(checks, RecordKind.PTR, "203.0.113.8")
        self.assertEqual(ptr.status, MISMATCH)
        self.assertIn("liar.mta.test does not resolve back to 203.0.113.8", ptr.explanation)
        self.assertEqual(self.domain.status, DomainStatus.VERIFIED)  # PTR is the IP owner's: shown, not required

    def test_ptr_missing(self):
        self.add_ips("203.0.113.9")
        self.dns.set_zone("113.0.203.in-addr.arpa", "1 IN PTR x.test.")
        self.publish(self.domain)
        ptr = self.check(self.verify(), RecordKind.PTR, "203.0.113.9")
        self.assertEqual(ptr.status, MISSING)
        self.assertIn("203.0.113.9 has no PTR record", ptr.explanation)

    # -- DNS failures are errors, never "missing" -----------------------------------------------------------------
    def test_servfail_is_an_error_and_keeps_the_status(self):
        self.publish(self.domain)
        self.verify()
        self.assertEqual(self.domain.status, DomainStatus.VERIFIED)
        self.dns.servfail(self.domain.name)
        checks = self.verify()
        statuses = {c.status for c in checks.values()}
        self.assertEqual(statuses, {ERROR}, [(c.kind, c.status) for c in checks.values()])
        key = self.domain.dkim_keys.get()
        self.assertIn("failed", self.check(checks, RecordKind.DKIM, key.selector).explanation)
        self.assertIn(
            "says nothing about whether the record is there",
            self.check(checks, RecordKind.DKIM, key.selector).explanation,
        )
        self.assertEqual(self.domain.status, DomainStatus.VERIFIED)
        self.assertTrue(self.domain.can_send()[0])
        self.verify()  # failing twice in a row still tells nothing
        self.assertEqual(self.domain.status, DomainStatus.VERIFIED)

    def test_timeout_is_an_error(self):
        self.publish(self.domain)
        self.dns.timeout(f"_dmarc.{self.domain.name}")
        checks = self.verify()
        dmarc = self.check(checks, RecordKind.DMARC)
        self.assertEqual(dmarc.status, ERROR)
        self.assertIn("timed out", dmarc.explanation)
        self.assertEqual(self.check(checks, RecordKind.SPF).status, OK)

    def test_verified_domain_losing_dkim_is_failing(self):
        self.publish(self.domain)
        self.verify()
        self.publish(self.domain, skip=(RecordKind.DKIM,))
        self.verify()
        self.assertEqual(self.domain.status, DomainStatus.FAILING)
        allowed, reason = self.domain.can_send()
        self.assertFalse(allowed)
        self.assertIn("has not verified", reason)

    # -- MTA-STS and TLS-RPT --------------------------------------------------------------------------------------
    def test_mta_sts_and_tls_rpt(self):
        services.update_domain(self.domain, mta_sts_mode="enforce", tls_rpt_rua="tls@example.test")
        with override_settings(MTA_STS_POLICY_HOST="sts.deliveryhub.test"):
            self.dns.set_zone("sts.deliveryhub.test", "@ IN A 127.0.0.1")
            self.publish(self.domain, skip=(RecordKind.TLS_RPT,))
            checks = self.verify()
        self.assertEqual(self.check(checks, RecordKind.MTA_STS, "txt").status, OK)
        self.assertEqual(self.check(checks, RecordKind.MTA_STS, "policy-host").status, OK)
        self.assertEqual(self.check(checks, RecordKind.TLS_RPT).status, MISSING)
        self.assertEqual(self.domain.status, DomainStatus.VERIFIED)  # optional records


class OwnershipClaimTest(DNSTestCase):
    def test_second_tenant_takes_over_with_the_token(self):
        mine = services.create_domain(self.tenant_a, "shared.test")
        self.publish(mine)
        services.verify_domain(mine)
        mine.refresh_from_db()
        self.assertEqual(mine.status, DomainStatus.VERIFIED)

        theirs = services.create_domain(self.tenant_b, "Shared.test.")
        self.assertEqual(theirs.status, DomainStatus.UNVERIFIED_CLAIM)
        self.assertTrue(AuditEntry.objects.filter(action="domain.claim_requested", tenant=self.tenant_b).exists())
        allowed, reason = theirs.can_send()
        self.assertFalse(allowed)
        self.assertIn(theirs.verification_txt, reason)
        # B publishes its DKIM key but not its token: still a claim
        self.publish(theirs, skip=(RecordKind.OWNERSHIP,))
        services.verify_domain(theirs)
        theirs.refresh_from_db()
        self.assertEqual(theirs.status, DomainStatus.UNVERIFIED_CLAIM)
        # B's token appears: B owns it, A's claim is released
        self.publish(theirs)
        services.verify_domain(theirs)
        theirs.refresh_from_db()
        mine.refresh_from_db()
        self.assertEqual(theirs.status, DomainStatus.VERIFIED)
        self.assertIsNotNone(theirs.ownership_verified)
        self.assertEqual(mine.status, DomainStatus.UNVERIFIED_CLAIM)
        self.assertFalse(mine.can_send()[0])
        self.assertEqual(services.signing_keys(mine), [])
        released = AuditEntry.objects.get(action="domain.claim_released")
        self.assertEqual(released.tenant_id, self.tenant_a.pk)
        self.assertTrue(AuditEntry.objects.filter(action="domain.ownership_verified", tenant=self.tenant_b).exists())
