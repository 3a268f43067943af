"""Configuration backup and restore: export → fresh install → import → export gives the same document; DKIM keys stay
encrypted and still sign after a restore; signatures, data keys and bad archives are checked; a dry run only prints."""

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import dkim
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings

from deliveryhub import audit, backup, services
from deliveryhub.choices import Role
from deliveryhub.crypto import key_id
from deliveryhub.models import AuditEntry, SigningKey, Tenant
from deliveryhub.signing import verify_file
from deliveryhub.testing.cases import make_user
from domains.models import DkimKey, SendingDomain
from ippools.choices import PoolPurpose
from ippools.models import DeliveryNode, IPPoolGrant, TenantDefaultPool, ThrottleRule
from ippools.testing import make_ip, make_node, make_plan, make_pool
from queues.backup import RESTORED_DETAIL
from queues.choices import CampaignState
from queues.delivery.dkim import DkimSigner
from queues.models import BounceRule, Campaign, ContactList, Message, Route, SmtpCredential, Suppression
from queues.testing import make_sending_domain
from reports.models import AlertChannel, AlertRule

ROOT = Path(__file__).resolve().parents[2]


def build_configuration():
    """A bit of everything a backup holds."""
    tenant_a = services.create_tenant("tenant-a", "Tenant A")
    tenant_b = services.create_tenant("tenant-b", "Tenant B", time_zone="Europe/Paris")
    make_user("alice@a.test", tenant_a, Role.OWNER)
    make_user("cora@a.test", tenant_a, Role.COMPLIANCE)
    make_user("charlie@b.test", tenant_b, Role.ADMIN)
    make_user("root@ops.test", is_superuser=True)
    domain = make_sending_domain(tenant_a, "mail-a.test")
    SendingDomain.objects.filter(pk=domain.pk).update(dmarc_policy="quarantine", mta_sts_mode="testing")
    make_sending_domain(tenant_b, "mail-b.test")
    node = make_node("node-1", region="eu")
    plan = make_plan("slow start")
    ip1 = make_ip("127.0.0.2", node, plan=plan, day=3)
    ip2 = make_ip("127.0.0.3", node)
    shared = make_pool("shared", all_tenants=True, members=[(ip1, 100), (ip2, 50)])
    dedicated = make_pool("a-dedicated", tenant=tenant_a, members=[(ip2, 10)], purpose=PoolPurpose.MARKETING)
    IPPoolGrant.objects.create(pool=shared, tenant=tenant_b)
    TenantDefaultPool.objects.create(tenant=tenant_a, purpose=PoolPurpose.MARKETING, pool=dedicated)
    ThrottleRule.objects.create(provider="google", max_per_minute=600, description="gmail pace")
    ThrottleRule.objects.create(tenant=tenant_a, pool=dedicated, max_connections=5)
    Route.objects.create(tenant=tenant_a, pattern="*.relay.test", host="93.184.215.14", port=587,
                         username="u", password="relay-Secret-4711")  # fmt: skip
    Suppression.objects.create(tenant=tenant_a, address="gone@example.com", reason="hard_bounce")
    Suppression.objects.create(tenant=tenant_b, address="nope@example.com", reason="complaint")
    BounceRule.objects.create(tenant=tenant_a, code="550", text="mailbox full", category="mailbox_full",
                              action="defer")  # fmt: skip
    credential = SmtpCredential(tenant=tenant_a, username="app-a", description="app")
    credential.set_password("pw-app-a-12345")
    credential.save()
    news = ContactList.objects.create(tenant=tenant_a, name="Newsletter", description="monthly", opt_in="double")
    vip = ContactList.objects.create(tenant=tenant_a, name="VIP")
    news.contacts.create(tenant=tenant_a, email="reader@example.com", domain="example.com")  # data, not configuration
    draft = Campaign.objects.create(tenant=tenant_a, name="Spring", subject="Hi {{ contact.name }}",
                                    sending_domain=domain, from_header="Shop <news@mail-a.test>", html="<p>Hi</p>",
                                    rate_per_hour=500, ip_pool=dedicated, tag="spring")  # fmt: skip
    draft.lists.set([news, vip])
    paused = Campaign.objects.create(tenant=tenant_a, name="Autumn", subject="Autumn", sending_domain=domain,
                                     from_header="Shop <news@mail-a.test>", text="Hello", state=CampaignState.PAUSED,
                                     state_detail="Paused by Alice")  # fmt: skip
    paused.lists.set([news])
    hook = AlertChannel.objects.create(tenant=tenant_a, name="ops hook", kind="webhook",
                                       target="https://93.184.215.14/hooks/a",
                                       secret="whsec_c2VjcmV0LXNlY3JldA==")  # fmt: skip
    mail = AlertChannel.objects.create(name="noc", kind="email", target="noc@ops.test")
    rule = AlertRule.objects.create(tenant=tenant_a, name="bounces", metric="bounce_rate", threshold=0.05,
                                    min_volume=200, group_by="pool", pool=dedicated)  # fmt: skip
    rule.channels.set([hook])
    AlertRule.objects.get(tenant=None, default_key="ip-listed").channels.set([mail])


def wipe_configuration():
    """What a fresh install has: nothing of the above (built-in warm-up plans aside, from migrations)."""
    for section in reversed(backup.sections()):
        section.model._default_manager.all().delete()
    get_user_model().objects.all().delete()
    Tenant.objects.all().delete()


def archive_document(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


class RoundTripTest(TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        with audit.audit_context(principal=None):
            build_configuration()

    def path(self, name):
        return Path(self.dir.name) / name

    def test_export_fresh_install_import_export_is_identical(self):
        call_command("export_config", "--output", str(self.path("one.zip")), stdout=io.StringIO())
        first = archive_document(self.path("one.zip"))
        self.assertEqual(first["data_key_ids"], [key_id()])
        key_row = first["sections"]["domains.dkim_keys"][0]
        self.assertNotIn("BEGIN", json.dumps(key_row))  # still encrypted
        self.assertEqual(key_row["private_key"]["data_key_id"], key_id())
        self.assertNotIn("relay-Secret-4711", json.dumps(first))
        self.assertNotIn("password\"", json.dumps(first["sections"]["core.users"]))  # no password hashes
        wipe_configuration()
        self.assertFalse(SendingDomain.objects.exists())
        call_command("import_config", str(self.path("one.zip")), stdout=io.StringIO())
        call_command("export_config", "--output", str(self.path("two.zip")), stdout=io.StringIO())
        second = archive_document(self.path("two.zip"))
        self.assertEqual(backup.content(first), backup.content(second))
        self.assertNotEqual(first["exported_at"], second["exported_at"])

    def test_restored_dkim_key_still_signs(self):
        backup.write_archive(self.path("one.zip"))
        wipe_configuration()
        document, _ = backup.read_archive(self.path("one.zip"))
        backup.import_document(document)
        key = DkimKey.objects.get(domain__name="mail-a.test")
        message = b"From: a@mail-a.test\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"
        signed = DkimSigner("mail-a.test", key.selector, key.private_key, key.algorithm).sign(message) + message
        record = f"v=DKIM1; k=rsa; p={key.public_key}".encode()
        self.assertTrue(dkim.verify(signed, dnsfunc=lambda name, timeout=5: record))
        self.assertEqual(Route.objects.get().password, "relay-Secret-4711")

    def test_restored_users_have_no_usable_password_and_keep_their_roles(self):
        backup.write_archive(self.path("one.zip"))
        wipe_configuration()
        backup.import_document(backup.read_archive(self.path("one.zip"))[0])
        alice = get_user_model().objects.get(username="alice@a.test")
        self.assertFalse(alice.has_usable_password())
        self.assertEqual(alice.memberships.get().role, Role.OWNER)
        self.assertTrue(get_user_model().objects.get(username="root@ops.test").is_superuser)

    def test_import_sends_nothing_and_is_audited(self):
        backup.write_archive(self.path("one.zip"))
        wipe_configuration()
        backup.import_document(backup.read_archive(self.path("one.zip"))[0])
        self.assertFalse(Message.objects.exists())
        entry = AuditEntry.objects.filter(action="config.import").latest("seq")
        self.assertEqual(entry.postchange["sections"]["domains.sending_domains"]["created"], 2)
        self.assertEqual(entry.postchange["scheduled"], "paused")
        self.assertTrue(AuditEntry.objects.filter(action="create", object_type="domains.sendingdomain",
                                                  seq__gt=entry.seq - 200).exists())  # fmt: skip

    def test_campaigns_come_back_as_definitions_that_do_not_send(self):
        Campaign.objects.filter(name="Autumn").update(state=CampaignState.SENDING, state_detail="")
        backup.write_archive(self.path("one.zip"))
        document = backup.read_archive(self.path("one.zip"))[0]
        self.assertNotIn("reader@example.com", json.dumps(document))  # contacts are not configuration
        wipe_configuration()
        backup.import_document(document)
        spring = Campaign.objects.get(name="Spring")
        self.assertEqual((spring.state, spring.rate_per_hour, spring.ip_pool.name, spring.sending_domain.name),
                         (CampaignState.DRAFT, 500, "a-dedicated", "mail-a.test"))  # fmt: skip
        self.assertEqual(sorted(spring.lists.values_list("name", flat=True)), ["Newsletter", "VIP"])
        self.assertEqual(ContactList.objects.get(name="Newsletter").opt_in, "double")
        autumn = Campaign.objects.get(name="Autumn")
        self.assertEqual((autumn.state, autumn.state_detail), (CampaignState.PAUSED, RESTORED_DETAIL))
        self.assertFalse(Message.objects.exists())
        wipe_configuration()
        backup.import_document(document, options=backup.ImportOptions(scheduled="skip"))
        self.assertEqual(list(Campaign.objects.values_list("name", flat=True)), ["Spring"])

    def test_import_into_the_same_install_changes_nothing(self):
        backup.write_archive(self.path("one.zip"))
        before = AuditEntry.objects.count()
        summary = backup.import_document(backup.read_archive(self.path("one.zip"))[0])
        self.assertTrue(all(c["created"] == c["updated"] == 0 for c in summary.values()), summary)
        self.assertEqual(AuditEntry.objects.count(), before + 1)  # only the config.import entry

    def test_dry_run_prints_differences_and_changes_nothing(self):
        backup.write_archive(self.path("one.zip"))
        SendingDomain.objects.filter(name="mail-a.test").update(dmarc_policy="reject")
        DeliveryNode.objects.create(name="node-9")
        Suppression.objects.filter(address="gone@example.com").delete()
        out = io.StringIO()
        call_command("import_config", str(self.path("one.zip")), "--dry-run", stdout=out)
        text = out.getvalue()
        self.assertIn('dmarc_policy: "reject" -> "quarantine"', text)
        self.assertIn('= ["node-9"] (not in the archive; an import keeps it)', text)
        self.assertIn('+ [["tenant-a"], "gone@example.com"]', text)
        self.assertEqual(SendingDomain.objects.get(name="mail-a.test").dmarc_policy, "reject")
        self.assertFalse(Suppression.objects.filter(address="gone@example.com").exists())

    def test_archive_is_signed_and_a_changed_byte_fails(self):
        backup.write_archive(self.path("one.zip"))
        self.assertTrue(verify_file(self.path("one.zip")).ok)
        call_command("verify_signature", str(self.path("one.zip")), stdout=io.StringIO())
        data = self.path("one.zip").read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(self.path("bad.zip"), "w") as out:
            for name in source.namelist():
                content = source.read(name)
                out.writestr(name, content.replace(b'"quarantine"', b'"none"') if name == "config.json" else content)
        with self.assertRaisesMessage(CommandError, "config.json was changed after signing"):
            call_command("verify_signature", str(self.path("bad.zip")), stdout=io.StringIO())
        with self.assertRaisesMessage(CommandError, "does not verify"):
            call_command("import_config", str(self.path("bad.zip")), stdout=io.StringIO())

    def test_missing_data_key_is_refused_by_id(self):
        backup.write_archive(self.path("one.zip"))
        wipe_configuration()
        other, ours = Fernet.generate_key().decode(), key_id(settings.DATA_KEY)
        with override_settings(DATA_KEY=other), self.assertRaisesMessage(CommandError, ours):
            call_command("import_config", str(self.path("one.zip")), stdout=io.StringIO())
        self.assertFalse(Tenant.objects.exists())

    def test_unknown_signer_on_a_live_install_needs_trust(self):
        backup.write_archive(self.path("one.zip"))
        fingerprint = SigningKey.objects.get().fingerprint
        SigningKey.objects.all().delete()
        from deliveryhub.signing import active_key

        active_key()  # this install now has another key
        with self.assertRaisesMessage(CommandError, "--trust-signer"):
            call_command("import_config", str(self.path("one.zip")), stdout=io.StringIO())
        call_command("import_config", str(self.path("one.zip")), "--trust-signer", fingerprint, stdout=io.StringIO())
        self.assertTrue(SigningKey.objects.get(fingerprint=fingerprint).active)

    def test_bad_archives_are_refused_with_a_reason(self):
        self.path("junk.zip").write_bytes(b"not an archive")
        with self.assertRaisesMessage(CommandError, "neither a PDF nor a signed archive"):
            call_command("import_config", str(self.path("junk.zip")), stdout=io.StringIO())
        with self.assertRaisesMessage(CommandError, "Cannot read"):
            call_command("import_config", str(self.path("missing.zip")), stdout=io.StringIO())
        document = backup.export_document()
        document["sections"]["ippools.pools"][0]["purpose"] = "no-such-purpose"
        wipe_configuration()
        with self.assertRaises(backup.RestoreError):
            backup.import_document(document)
        self.assertFalse(Tenant.objects.exists())  # all or nothing


class FreshInstallTest(TestCase):
    """The round trip through the commands into a really fresh install: a new SQLite database, migrated."""

    def test_commands_round_trip_into_a_new_database(self):
        with audit.audit_context(principal=None):
            build_configuration()
        with tempfile.TemporaryDirectory() as workdir:
            one, two = Path(workdir, "one.zip"), Path(workdir, "two.zip")
            call_command("export_config", "--output", str(one), stdout=io.StringIO())
            env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir}/fresh.sqlite3", "DELIVERYHUB_DATA_KEY":
                   settings.DATA_KEY, "DELIVERYHUB_PSEUDONYM_KEY": settings.PSEUDONYM_KEY}  # fmt: skip
            for command in (["migrate", "-v0"], ["import_config", str(one)], ["export_config", "--output", str(two)]):
                done = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True,
                                      text=True, timeout=300)  # fmt: skip
                self.assertEqual(done.returncode, 0, done.stderr + done.stdout)
            self.assertEqual(backup.content(archive_document(one)), backup.content(archive_document(two)))
