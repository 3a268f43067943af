"""The domains API: the tenancy matrix, verification, the record list, DKIM keys, rotation and export."""

from deliveryhub import services as core
from deliveryhub.choices import Role
from deliveryhub.models import AuditEntry
from deliveryhub.testing.cases import APIViewTestCases
from domains import services
from domains.choices import DkimKeyState, RecordKind
from domains.models import DkimKey, SendingDomain
from domains.testing import DNSTestCase


class DomainAPITest(APIViewTestCases.Full):
    url = "/api/v1/domains/"
    model = SendingDomain
    create_data = {"name": "new.example.test", "dmarc_policy": "quarantine", "dmarc_rua": "dmarc@example.test"}
    update_data = {"dmarc_policy": "reject", "spf_all": "-all"}

    def make_object(self, tenant):
        return services.create_domain(tenant, f"d{SendingDomain.objects.count()}.example.test")

    def test_create_normalises_and_creates_a_pending_key(self):
        response = self.api(self.alice_key).post(self.url, {"name": "BÜCHER.example.", "ed25519": True}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(body["name"], "xn--bcher-kva.example")
        self.assertEqual(body["unicode_name"], "bücher.example")
        self.assertEqual(body["status"], "pending")
        self.assertFalse(body["can_send"]["allowed"])
        self.assertIn("DKIM", body["can_send"]["reason"])
        self.assertNotIn("private_key", response.content.decode())
        keys = DkimKey.objects.filter(domain_id=body["id"])
        self.assertEqual(sorted(k.algorithm for k in keys), ["ed25519-sha256", "rsa-sha256"])
        self.assertTrue(all(k.state == DkimKeyState.PENDING for k in keys))

    def test_idna_2008_normalisation(self):
        response = self.api(self.alice_key).post(self.url, {"name": "Faß.Example"}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["name"], "xn--fa-hia.example")  # IDNA 2008: ß is not mapped to "ss"
        self.assertEqual(response.json()["unicode_name"], "faß.example")
        response = self.api(self.alice_key).post(self.url, {"name": "xn--fa-hia.example"}, format="json")
        self.assertEqual(response.status_code, 400)  # the same domain, written as its A-label
        self.assertIn("already a sending domain", response.json()["error"]["fields"]["name"][0])

    def test_invalid_and_duplicate_names_are_field_errors(self):
        names = (
            "not a domain", "localhost", "1.2.3.4", "a" * 64 + ".test", "-x.test", "user@example.test", "a_b.test",
            "☃.example", "xn--zz.example", "https://example.test/", "",
        )  # fmt: skip
        for name in names:
            response = self.api(self.alice_key).post(self.url, {"name": name}, format="json")
            self.assertEqual(response.status_code, 400, name)
            self.assertIn("name", response.json()["error"]["fields"], name)
        self.assertEqual(self.api(self.alice_key).post(self.url, {"name": "dup.test"}, format="json").status_code, 201)
        response = self.api(self.alice_key).post(self.url, {"name": "DUP.test"}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("already a sending domain", response.json()["error"]["fields"]["name"][0])
        self.assertEqual(SendingDomain.objects.filter(name="dup.test").count(), 1)
        response = self.api(self.alice_key).post(self.url, {"name": "x.test", "dkim_bits": 1024}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("dkim_bits", response.json()["error"]["fields"])
        response = self.api(self.alice_key).post(self.url, {"name": "y.test", "spf_extra_terms": "+all"}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertFalse(SendingDomain.objects.filter(name__in=["x.test", "y.test"]).exists())

    def test_name_cannot_change(self):
        domain = self.make_object(self.tenant_a)
        response = self.api(self.alice_key).patch(self.detail_url(domain), {"name": "other.test"}, format="json")
        self.assertEqual(response.status_code, 400)

    def test_other_tenant_may_claim_only_as_unverified(self):
        self.api(self.alice_key).post(self.url, {"name": "claimed.test"}, format="json")
        response = self.api(self.charlie_key).post(self.url, {"name": "claimed.test"}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["status"], "unverified_claim")
        self.assertIn("dh-verification=", response.json()["can_send"]["reason"])

    def test_list_query_count_is_flat(self):
        for _ in range(3):
            self.make_object(self.tenant_a)
        client = self.api(self.alice_key)
        client.get(self.url)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as few:
            client.get(self.url)
        for _ in range(3):
            self.make_object(self.tenant_a)
        with CaptureQueriesContext(connection) as more:
            client.get(self.url)
        self.assertLessEqual(len(more), len(few) + 3)  # can_send reads pending keys only for blocked domains


class DomainVerbsAPITest(DNSTestCase):
    def setUp(self):
        super().setUp()
        self.domain = services.create_domain(self.tenant_a, "example.test")
        self.base = f"/api/v1/domains/{self.domain.pk}/"

    def test_verify_and_dns_records(self):
        response = self.api(self.alice_key).get(self.base + "dns-records/")
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertIn("_dmarc.example.test.\t3600\tIN\tTXT", body["zone_file"])
        self.assertTrue(all(r["status"] is None for r in body["records"]))
        self.publish(self.domain, skip=(RecordKind.DMARC,))
        response = self.api(self.alice_key).post(self.base + "verify/")
        self.assertEqual(response.status_code, 200, response.content)
        records = {(r["kind"], r["subject"]): r for r in response.json()["records"]}
        self.assertEqual(records[("dmarc", "")]["status"], "missing")
        self.assertIn("No DMARC record", records[("dmarc", "")]["explanation"])
        self.assertEqual(records[("spf", "")]["status"], "ok")
        self.assertEqual(records[("spf", "")]["observed"], records[("spf", "")]["expected"])
        self.assertEqual(response.json()["status"], "warning")
        # the stored result is what dns-records answers afterwards
        again = self.api(self.bob_key).get(self.base + "dns-records/").json()
        self.assertEqual(again["records"], response.json()["records"])

    def test_verify_needs_change_rights_and_own_tenant(self):
        self.assertEqual(self.api(self.bob_key).post(self.base + "verify/").status_code, 403)
        self.assertEqual(self.api(self.charlie_key).post(self.base + "verify/").status_code, 404)
        self.assertEqual(self.api(self.charlie_key).get(self.base + "dns-records/").status_code, 404)
        self.assertEqual(self.api().post(self.base + "verify/").status_code, 401)

    def test_dkim_keys_and_rotate(self):
        response = self.api(self.bob_key).get(self.base + "dkim-keys/")
        self.assertEqual(response.status_code, 200)
        [key] = response.json()
        self.assertEqual(key["state"], "pending")
        self.assertTrue(all(len(s) <= 255 for s in key["dns_strings"]))
        self.assertNotIn("PRIVATE", response.content.decode())
        self.assertEqual(self.api(self.bob_key).post(self.base + "dkim-keys/rotate/").status_code, 403)
        self.assertEqual(self.api(self.charlie_key).post(self.base + "dkim-keys/rotate/").status_code, 404)
        response = self.api(self.alice_key).post(self.base + "dkim-keys/rotate/", {"bits": 1024}, format="json")
        self.assertEqual(response.status_code, 400)
        response = self.api(self.alice_key).post(
            self.base + "dkim-keys/rotate/", {"algorithm": "ed25519-sha256"}, format="json"
        )
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["algorithm"], "ed25519-sha256")
        entry = AuditEntry.objects.filter(action="dkim.rotate").latest("seq")
        self.assertEqual(entry.actor_type, "apikey")
        self.assertEqual(entry.tenant_id, self.tenant_a.pk)
        self.assertEqual(len(self.api(self.alice_key).get(self.base + "dkim-keys/").json()), 2)

    def test_private_key_export_is_refused_in_the_api(self):
        key = self.domain.dkim_keys.get()
        url = f"{self.base}dkim-keys/{key.pk}/private-key/"
        _, owner = core.create_api_key(tenant=self.tenant_a, name="owner", role=Role.OWNER)
        _, operator = core.create_api_key(tenant=None, name="ops")
        for raw in (self.alice_key, owner, operator):
            response = self.api(raw).get(url)
            self.assertEqual(response.status_code, 403)
            self.assertIn("fresh two-factor check", response.json()["error"]["message"])
            self.assertNotIn("PRIVATE", response.content.decode())
        self.assertEqual(self.api(self.charlie_key).get(url).status_code, 404)
        self.assertFalse(AuditEntry.objects.filter(action="dkim.export").exists())

    def test_delete(self):
        self.assertEqual(self.api(self.alice_key).delete(self.base).status_code, 204)
        self.assertFalse(DkimKey.objects.filter(domain_id=self.domain.pk).exists())
