"""
`manage.py bench_compliance` (`make bench-compliance`): the compliance pack's speed targets on this machine.

1. The audit-log PDF: AUDIT_ENTRIES (10,000) entries exported as a signed PDF (target ≤ 20 s).
2. Data-subject access at scale, on PostgreSQL: a database holding ATTEMPTS (10,000,000) delivery attempts
   (MESSAGES messages of other recipients, four attempts each), then access requests for a subject with 200 messages
   and for one with 10,000 messages, and an erasure of the first (target: an access request ≤ 10 s, through the
   (tenant, lower(rcpt_to)) and message indexes rather than scans; the query plans are printed).

Runs on the database named by BENCH_DATABASE_URL (created if missing; the filled tables are kept between runs, so a
second run skips the fill). Never on the development database.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

AUDIT_ENTRIES = 10_000
ATTEMPTS = 10_000_000
ATTEMPTS_PER_MESSAGE = 4
TENANT = "bench-compliance"
SUBJECTS = (("subject.small@bench.example", 200), ("subject.large@bench.example", 10_000))
ERASED = "subject.erased@bench.example"


class Command(BaseCommand):
    help = "Benchmark the audit PDF (10,000 entries) and data-subject access with 10,000,000 attempts stored."

    def add_arguments(self, parser):
        parser.add_argument("--attempts", type=int, default=ATTEMPTS)
        parser.add_argument("--audit-entries", type=int, default=AUDIT_ENTRIES)
        parser.add_argument("--run", action="store_true", help="internal: the inner run on the bench database")

    def handle(self, *args, attempts, audit_entries, run=False, **options):
        if run:
            return self.inner(attempts, audit_entries)
        url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/deliveryhub_bench")
        if not url.startswith("postgres"):
            raise CommandError("BENCH_DATABASE_URL must name a PostgreSQL database (the target is for PostgreSQL).")
        self.ensure_database(url)
        workdir = Path(tempfile.mkdtemp(prefix="deliveryhub-bench-compliance-"))
        env = {**os.environ, "DATABASE_URL": url, "DELIVERYHUB_VAR_DIR": str(workdir), "DEBUG": "false",
               "DELIVERYHUB_SECRET_KEY": "bench-secret", "DELIVERYHUB_DATA_KEY": "bench-data-key",
               "DELIVERYHUB_PSEUDONYM_KEY": "bench-pseudonym-key", "DELIVERYHUB_LOG_LEVEL": "WARNING"}  # fmt: skip
        done = subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_compliance", "--run",
                               "--attempts", str(attempts), "--audit-entries", str(audit_entries)], env=env,
                              cwd=settings.BASE_DIR)  # fmt: skip
        if done.returncode:
            raise CommandError(f"The benchmark failed (exit {done.returncode}).")

    def ensure_database(self, url):
        import psycopg

        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        admin = parts._replace(path="/postgres").geturl()
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')

    # -- the inner run --------------------------------------------------------------------------------------------

    def inner(self, attempts, audit_entries):
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.bench_audit_pdf(audit_entries)
        self.bench_access(attempts)

    def bench_audit_pdf(self, count):
        from deliveryhub import audit
        from deliveryhub.exports import AuditExportRunner
        from deliveryhub.models import AuditEntry, Job, Tenant

        tenant, _ = Tenant.objects.get_or_create(slug="bench-audit", defaults={"name": "Bench audit"})
        have = AuditEntry.objects.filter(tenant=tenant, action="bench.change").count()
        with audit.audit_context(principal=None):
            for n in range(have, count):
                audit.record("bench.change", tenant=tenant, object_type="domains.sendingdomain", object_id=str(n),
                             object_repr=f"domain-{n}.example", prechange={"dmarc_policy": "none", "n": n},
                             postchange={"dmarc_policy": "quarantine", "rua": f"mailto:dmarc-{n}@example.com"},
                             message=f"Changed by the bench, entry {n}")  # fmt: skip
        job = Job.objects.create(tenant=tenant, name="bench", runner=AuditExportRunner.dotted_path(),
                                 params={"format": "pdf", "filters": {"action": "bench.change"}})  # fmt: skip
        runner = AuditExportRunner()
        queryset = runner.queryset(job)
        target = Path(settings.MEDIA_ROOT) / "bench-audit.pdf"
        target.parent.mkdir(parents=True, exist_ok=True)
        with audit.audit_context(principal=None):
            started = time.monotonic()
            rows, _ = runner.write_pdf(job, queryset, queryset.count(), target)
            elapsed = time.monotonic() - started
        from pypdf import PdfReader

        pages = len(PdfReader(str(target)).pages)
        self.stdout.write(f"audit PDF: {rows} entries, {pages} pages, {target.stat().st_size / 1e6:.1f} MB, signed, in "
                          f"{elapsed:.1f} s (target ≤ 20 s)")  # fmt: skip

    def fill(self, attempts):
        """MESSAGES other recipients' messages with four attempts each, copied from template rows by SQL."""
        from django.db import connection

        from deliveryhub import audit, services
        from deliveryhub.models import Tenant
        from queues.models import DeliveryAttempt, Message
        from queues.services import Submission, accept_messages
        from queues.testing import make_sending_domain

        tenant = Tenant.objects.filter(slug=TENANT).first()
        if tenant is not None and DeliveryAttempt.objects.filter(message__tenant=tenant).count() >= attempts:
            return tenant
        with audit.audit_context(principal=None):
            if tenant is None:
                tenant = services.create_tenant(TENANT, "Bench compliance")
                make_sending_domain(tenant, "bench.example")
            template = accept_messages(tenant, Submission(sender="app@bench.example", to=["template@bench.example"],
                                                          subject="Template", text="x" * 2000)).messages[0]  # fmt: skip
        Message.objects.filter(pk=template.pk).update(status="delivered", status_detail="250 2.0.0 OK")
        attempt = DeliveryAttempt.objects.create(
            message=template, status="delivered", node="bench", source_ip="127.0.0.2", mx_host="mx.dest.example",
            code=250, enhanced_code="2.0.0", text="2.0.0 OK queued as 1234", duration=0.2,
        )  # fmt: skip
        messages = attempts // ATTEMPTS_PER_MESSAGE
        self.stdout.write(f"filling: {messages} messages, {messages * ATTEMPTS_PER_MESSAGE} attempts …")
        started = time.monotonic()
        self.copy_rows(Message, template.pk, messages, {
            "uuid": "md5(random()::text || g::text)::uuid",
            "rcpt_to": "'user' || g || '@dest' || mod(g, 5000) || '.example'",
            "rcpt_domain": "'dest' || mod(g, 5000) || '.example'",
            "created": "now() - mod(g, 80) * interval '1 day'",
        })  # fmt: skip
        with connection.cursor() as cursor:
            columns = [f.column for f in DeliveryAttempt._meta.concrete_fields if f.column not in ("id", "message_id")]
            q = connection.ops.quote_name
            cursor.execute(
                f"INSERT INTO {q(DeliveryAttempt._meta.db_table)} (message_id, {', '.join(map(q, columns))}) "
                f"SELECT m.id, {', '.join('t.' + q(c) for c in columns)} FROM {q(Message._meta.db_table)} m "
                f"CROSS JOIN generate_series(1, {ATTEMPTS_PER_MESSAGE}) n "
                f"JOIN {q(DeliveryAttempt._meta.db_table)} t ON t.id = %s WHERE m.tenant_id = %s AND m.id <> %s",
                [attempt.pk, tenant.pk, template.pk],
            )
            cursor.execute("ANALYZE")
        self.stdout.write(f"filled in {time.monotonic() - started:.0f} s")
        return tenant

    def copy_rows(self, model, template_pk, count, overrides):
        from django.db import connection

        q = connection.ops.quote_name
        columns = [f.column for f in model._meta.concrete_fields if f.column != "id"]
        values = [overrides.get(column, f"t.{q(column)}") for column in columns]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {q(model._meta.db_table)} ({', '.join(map(q, columns))}) SELECT {', '.join(values)} "
                f"FROM generate_series(1, %s) g JOIN {q(model._meta.db_table)} t ON t.id = %s",
                [count, template_pk],
            )

    def subject_mail(self, tenant, address, count):
        """`count` messages to `address` with four attempts and a complaint each (skipped when already there)."""
        from django.db.models.functions import Lower

        from queues.models import DeliveryAttempt, Message, MessageEvent

        existing = Message.objects.alias(r=Lower("rcpt_to")).filter(tenant=tenant, r=address).count()
        if existing >= count:
            return
        template = Message.objects.filter(tenant=tenant, rcpt_to="template@bench.example").first()
        self.copy_rows(Message, template.pk, count - existing, {
            "uuid": "md5(random()::text || g::text)::uuid", "rcpt_to": f"'{address}'",
            "rcpt_domain": "'bench.example'", "created": "now() - mod(g, 80) * interval '1 day'",
        })  # fmt: skip
        rows = Message.objects.alias(r=Lower("rcpt_to")).filter(tenant=tenant, r=address)
        ids = list(rows.values_list("id", flat=True))
        DeliveryAttempt.objects.bulk_create([
            DeliveryAttempt(message_id=pk, status="delivered", code=250, text=f"250 ok <{address}>")
            for pk in ids for _ in range(ATTEMPTS_PER_MESSAGE)
        ], batch_size=5000)  # fmt: skip
        MessageEvent.objects.bulk_create([MessageEvent(message_id=pk, kind="complained") for pk in ids],
                                         batch_size=5000)  # fmt: skip

    def bench_access(self, attempts):
        from django.db import connection
        from django.db.models.functions import Lower

        from deliveryhub import audit
        from queues.models import DeliveryAttempt, Message
        from reports import services
        from reports.models import DataRequest

        tenant = self.fill(attempts)
        stored = DeliveryAttempt.objects.filter(message__tenant=tenant).count()
        for address, count in (*SUBJECTS, (ERASED, 200)):
            self.subject_mail(tenant, address, count)
        subject_rows = Message.objects.alias(r=Lower("rcpt_to")).filter(tenant=tenant, r__in=[SUBJECTS[0][0]])
        sql, params = subject_rows.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            plan = " / ".join(row[0].strip() for row in cursor.fetchall() if "Scan" in row[0])
        self.stdout.write(f"stored: {stored} attempts; plan of a subject's messages: {plan}")

        def run(kind, address):
            # The job's body, run here (no worker hop): what the archive or erasure itself costs.
            request = DataRequest.objects.create(tenant=tenant, kind=kind, subjects=[address], requested_by_name="b")
            started = time.monotonic()
            with audit.audit_context(principal=None):
                request = services.run_data_request(request.pk)
            return request, time.monotonic() - started

        for address, count in SUBJECTS:
            request, elapsed = run("access", address)
            self.stdout.write(f"access request, {count} messages / {count * ATTEMPTS_PER_MESSAGE} attempts of the "
                              f"subject among {stored} attempts: {elapsed:.2f} s, archive "
                              f"{request.archive_size / 1e6:.1f} MB (target ≤ 10 s)")  # fmt: skip
        _, elapsed = run("erasure", ERASED)
        self.stdout.write(f"erasure, 200 messages of the subject among {stored} attempts: {elapsed:.2f} s")
