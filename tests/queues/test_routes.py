"""Routes cannot turn the platform into an SSRF or port-scanning tool: a tenant's route targets public addresses only,
checked on save (API, UI, admin) with the host name resolved; private targets only behind the operator's setting,
and never the platform's own ports."""

from django.test import override_settings

from deliveryhub.testing.cases import login_verified
from domains.testing import DNSTestCase
from queues.models import Route

URL = "/api/v1/routes/"
REFUSED_TARGETS = [
    ("127.0.0.1", 5432, "loopback"),
    ("169.254.169.254", 80, "link-local"),
    ("[::1]", 25, "loopback"),
    ("::1", 25, "loopback"),
    ("0.0.0.0", 25, "unspecified"),
    ("10.0.0.8", 25, "private"),
    ("::ffff:192.168.0.1", 25, "private"),
    ("localhost", 2525, "loopback"),
    ("inside.relays.test", 25, "resolves to 10.9.8.7, a private address"),
    ("mixed.relays.test", 25, "resolves to 127.0.0.1, a loopback address"),
    ("missing.relays.test", 25, "has no address"),
]


@override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=False)
class RouteTargetTest(DNSTestCase):
    def setUp(self):
        super().setUp()
        self.dns.set_zone(
            "relays.test",
            """
            smtp    IN A 93.184.215.14
            inside  IN A 10.9.8.7
            mixed   IN A 93.184.215.14
            mixed   IN A 127.0.0.1
            """,
        )

    def post(self, host, port):
        data = {"pattern": "*", "host": host, "port": port}
        return self.api(self.alice_key).post(URL, data, format="json")

    def test_api_refuses_non_public_targets_with_a_field_error_and_stores_nothing(self):
        for host, port, why in REFUSED_TARGETS:
            with self.subTest(host=host):
                response = self.post(host, port)
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn(why, response.json()["error"]["fields"]["host"][0])
        self.assertFalse(Route.objects.exists())
        response = self.post("smtp.relays.test", 587)
        self.assertEqual(response.status_code, 201, response.content)

    def test_api_update_to_a_private_target_is_refused(self):
        route = Route.objects.create(tenant=self.tenant_a, pattern="*", host="smtp.relays.test", port=25)
        response = self.api(self.alice_key).patch(f"{URL}{route.pk}/", {"host": "169.254.169.254"}, format="json")
        self.assertEqual(response.status_code, 400, response.content)
        route.refresh_from_db()
        self.assertEqual(route.host, "smtp.relays.test")

    def test_ui_form_refuses_with_the_reason_on_the_field(self):
        login_verified(self.client, self.alice)
        data = {"pattern": "*", "host": "169.254.169.254", "port": 80, "priority": 100, "enabled": "on"}
        response = self.client.post("/routes/new/", data)
        self.assertContains(response, "link-local address (cloud metadata services live there)", status_code=400)
        self.assertFalse(Route.objects.exists())

    @override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=True, SMTPD_PORT=2587, SMTPD_INBOUND_PORT=2525, WEB_PORT=8000)
    def test_operator_setting_allows_private_targets_but_never_the_platforms_ports(self):
        self.assertEqual(self.post("127.0.0.1", 2526).status_code, 201)  # the demo's capture server, say
        self.assertEqual(self.post("inside.relays.test", 25).status_code, 201)
        for port in (2587, 2525, 8000):
            response = self.post("127.0.0.1", port)
            self.assertEqual(response.status_code, 400, response.content)
            self.assertIn("platform's own services", response.json()["error"]["fields"]["host"][0])
        self.assertEqual(Route.objects.count(), 2)
