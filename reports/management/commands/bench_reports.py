"""
`manage.py bench_reports` (`make bench-reports`): the monitoring speed targets on this machine, on PostgreSQL.

1. Seed `--attempts` delivery attempts (default 10,000,000; two per message) over 30 days, 20 tenants with a domain
   and a dedicated pool each, 50 source IPs, 4 providers, complaints on 0.1 % of the messages, by INSERT … SELECT
   over generate_series (no Python per row); then their roll-ups by one GROUP BY per table (the same sums the
   roll-up job writes; the job itself is timed on a slice, inside a rolled-back transaction).
2. Time, through the real views in process (Django's test client, a verified session): the tenant dashboard and the
   platform dashboard (24 h and 7 d; target p95 < 300 ms), `/metrics` (target < 200 ms, ≥ 40 families), and the
   evaluation of 100 alert rules (target < 2 s a run).
3. Delivery throughput with roll-ups on and off is `make bench`'s to measure: the roll-up job adds nothing to the
   delivery path; `DELIVERYHUB_ROLLUPS_ENABLED=false` turns the job off for the comparison.

Runs on BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/deliveryhub_bench_reports, created if
missing; a seed of the same size is kept and reused by the next run). Never on the development database.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

ATTEMPTS = 10_000_000
TENANTS = 20
IPS = 50
DAYS = 30
REQUESTS = 30
RULES = 100
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/deliveryhub_bench_reports"


class Command(BaseCommand):
    help = "Benchmark the monitoring pages, /metrics and alert evaluation over seeded attempts and roll-ups."

    def add_arguments(self, parser):
        parser.add_argument("--attempts", type=int, default=ATTEMPTS, help="attempts to seed (default 10,000,000)")
        parser.add_argument("--requests", type=int, default=REQUESTS, help="requests per page timed")
        parser.add_argument("--run", action="store_true", help="internal: the inner run on the bench database")

    def handle(self, *args, attempts, requests, run=False, **options):
        if attempts < 1000 or requests < 1:
            raise CommandError("--attempts is at least 1,000 and --requests at least 1.")
        if run:
            return self.inner(attempts, requests)
        url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
        if not url.startswith("postgres"):
            raise CommandError("BENCH_DATABASE_URL must name a PostgreSQL database (the targets are for PostgreSQL).")
        self.ensure_database(url)
        workdir = Path(tempfile.mkdtemp(prefix="deliveryhub-bench-reports-"))
        env = {**os.environ, "DATABASE_URL": url, "DELIVERYHUB_VAR_DIR": str(workdir), "DEBUG": "false",
               "DELIVERYHUB_SECRET_KEY": "bench-secret", "DELIVERYHUB_DATA_KEY": "bench-data-key",
               "DELIVERYHUB_PSEUDONYM_KEY": "bench-pseudonym-key", "DELIVERYHUB_LOG_LEVEL": "WARNING",
               "DELIVERYHUB_ALLOWED_HOSTS": "testserver", "DELIVERYHUB_RQ_IS_ASYNC": "false"}  # fmt: skip
        done = subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_reports", "--run",
                               "--attempts", str(attempts), "--requests", str(requests)], env=env,
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

    def inner(self, attempts, requests):
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        tenants, root, key = self.seed(attempts)
        self.bench_job()
        self.bench_pages(tenants, root, requests)
        self.bench_metrics(key, requests)
        self.bench_alerts(tenants)
        self.stdout.write("delivery throughput with roll-ups on vs off: `make bench` (the job is off the delivery "
                          "path; DELIVERYHUB_ROLLUPS_ENABLED=false for the comparison run)")  # fmt: skip

    def report(self, what, values_ms, target_ms=None):
        values = sorted(values_ms)
        p50 = statistics.median(values)
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        verdict = "" if target_ms is None else (" ok" if p95 < target_ms else " MISSED")
        target = "" if target_ms is None else f" (target p95 < {target_ms} ms){verdict}"
        self.stdout.write(f"{what:44} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  n={len(values)}{target}")

    def seed(self, attempts):
        from django.db import connection

        from deliveryhub import audit, services
        from deliveryhub.models import Tenant
        from deliveryhub.testing.cases import make_user
        from ippools.testing import make_ip, make_node, make_pool
        from queues.models import DeliveryAttempt
        from queues.services import Submission, accept_messages
        from queues.testing import make_sending_domain
        from reports.models import RollupCursor

        tenants = list(Tenant.objects.filter(slug__startswith="bench-t").order_by("pk"))
        existing = DeliveryAttempt.objects.count() if tenants else 0
        if tenants and existing == attempts:
            self.stdout.write(f"seed: reusing {existing:,} attempts")
        else:
            if tenants:
                raise CommandError(f"The bench database holds {existing:,} attempts, not {attempts:,}: drop it first "
                                   "(dropdb deliveryhub_bench_reports) or run with that size.")  # fmt: skip
            started = time.monotonic()
            with audit.audit_context(principal=None):
                nodes = [make_node(f"bench-node-{i}") for i in (1, 2)]
                ips = [make_ip(f"198.51.100.{i + 1}", nodes[i % 2]) for i in range(IPS)]
                for i in range(TENANTS):
                    tenant = services.create_tenant(f"bench-t{i:02d}", f"Bench tenant {i:02d}")
                    domain = make_sending_domain(tenant, f"mail.t{i:02d}.bench.example", dkim=False)
                    members = [(ips[(i * 5 + k) % IPS], 100) for k in range(3)]  # 3 IPs each, some shared
                    make_pool(f"bench-pool-{i:02d}", tenant=tenant, members=members)
                    accept_messages(tenant, Submission(sender=f"app@{domain.name}", to=["template@gmail.com"],
                                                       subject="Template", text="x" * 3000))  # fmt: skip
                    tenants.append(tenant)
            self.fill(attempts, tenants, ips)
            self.stdout.write(f"seed: {attempts:,} attempts, {attempts // 2:,} messages over {DAYS} days in "
                              f"{time.monotonic() - started:.0f} s")  # fmt: skip
            started = time.monotonic()
            self.aggregate()
            with connection.cursor() as cursor:
                for name, table in (("attempts", DeliveryAttempt), ("events", "queues_messageevent"),
                                    ("messages", "queues_message")):  # fmt: skip
                    table = table if isinstance(table, str) else table._meta.db_table
                    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
                    RollupCursor.objects.update_or_create(name=name, defaults={"last_id": cursor.fetchone()[0]})
                cursor.execute("ANALYZE")
            self.stdout.write(f"roll-ups: aggregated in {time.monotonic() - started:.0f} s")
        self.stdout.write(self.sizes())
        root = make_user("root@bench.example", is_superuser=True) if not self.user("root@bench.example") else \
            self.user("root@bench.example")  # fmt: skip
        _, key = services.create_api_key(tenant=None, name="bench-prometheus")
        return tenants, root, key

    def user(self, email):
        from django.contrib.auth import get_user_model

        return get_user_model().objects.filter(email=email).first()

    def fill(self, attempts, tenants, ips):
        from django.db import connection

        from ippools.models import IPPool
        from queues.models import DeliveryAttempt, Message, MessageEvent

        q = connection.ops.quote_name
        messages = attempts // 2
        tenant_ids = [t.pk for t in tenants]
        templates = {m.tenant_id: m for m in Message.objects.filter(tenant_id__in=tenant_ids)}
        template = templates[tenant_ids[0]]
        pools = dict(IPPool.objects.filter(tenant_id__in=tenant_ids).values_list("tenant_id", "pk"))
        domains = {m.tenant_id: m.sending_domain_id for m in templates.values()}
        contents = {m.tenant_id: m.content_id for m in templates.values()}
        arr = lambda values: "ARRAY[" + ",".join(str(v) for v in values) + "]"  # noqa: E731
        t = f"(1 + mod(g, {len(tenant_ids)}))"
        overrides = {
            "uuid": "md5(random()::text || g::text)::uuid",
            "tenant_id": f"({arr(tenant_ids)})[{t}]",
            "sending_domain_id": f"({arr([domains[i] for i in tenant_ids])})[{t}]",
            "content_id": f"({arr([contents[i] for i in tenant_ids])})[{t}]",
            "ip_pool_id": f"({arr([pools[i] for i in tenant_ids])})[{t}]",
            "rcpt_to": "'user' || g || '@' || (ARRAY['gmail.com','outlook.com','yahoo.com','example.com'])"
                       "[1 + mod(g / 7, 4)]",
            "rcpt_domain": "(ARRAY['gmail.com','outlook.com','yahoo.com','example.com'])[1 + mod(g / 7, 4)]",
            "status": "'delivered'",
            "created": f"now() - ({DAYS} * 86400.0 * g / {messages}) * interval '1 second'",
        }  # fmt: skip
        columns = [f.column for f in Message._meta.concrete_fields if f.column != "id"]
        values = [overrides.get(column, f"t.{q(column)}") for column in columns]
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {q(Message._meta.db_table)} ({', '.join(map(q, columns))}) "
                           f"SELECT {', '.join(values)} FROM generate_series(1, %s) g "
                           f"JOIN {q(Message._meta.db_table)} t ON t.id = %s", [messages, template.pk])  # fmt: skip
            ip_array = "ARRAY[" + ",".join(f"'{ip.address}'" for ip in ips) + "]"
            # two attempts per message: seconds and minutes after it was accepted; 90 % delivered, 6 % deferred,
            # 4 % bounced, from one of the tenant's three IPs
            cursor.execute(
                f"INSERT INTO {q(DeliveryAttempt._meta.db_table)} (message_id, time, status, node, source_ip, mx_host, "
                "tls_version, tls_verified, code, enhanced_code, text, duration, category, action) "
                "SELECT m.id, m.created + (n * n * 7) * interval '1 second', "
                "CASE WHEN h < 90 THEN 'delivered' WHEN h < 96 THEN 'deferred' ELSE 'bounced' END, "
                f"'bench-node-' || (1 + mod(m.id, 2)), ({ip_array})[1 + mod((m.tenant_id * 5 + mod(m.id, 3))::int, "
                f"{len(ips)})], 'mx.' || m.rcpt_domain, 'TLSv1.3', true, "
                "CASE WHEN h < 90 THEN 250 WHEN h < 96 THEN 421 ELSE 550 END, "
                "CASE WHEN h < 90 THEN '2.0.0' WHEN h < 96 THEN '4.7.0' ELSE '5.1.1' END, "
                "CASE WHEN h < 90 THEN 'OK' WHEN h < 96 THEN 'Try again later' ELSE 'No such user' END, 0.2, "
                "CASE WHEN h < 90 THEN '' WHEN h < 96 THEN 'rate_limited' ELSE 'invalid_recipient' END, '' "
                "FROM (SELECT m.*, n, mod(abs(hashtext(m.id::text || n::text)), 100) h "
                f"FROM {q(Message._meta.db_table)} m "
                "CROSS JOIN generate_series(1, 2) n WHERE m.id <> ALL(%s)) m",
                [list(m.pk for m in templates.values())],
            )  # fmt: skip
            cursor.execute(
                f"INSERT INTO {q(MessageEvent._meta.db_table)} (message_id, time, kind, detail, data) "
                "SELECT id, created + interval '1 hour', 'complained', 'Complaint received (feedback loop).', '{}' "
                f"FROM {q(Message._meta.db_table)} WHERE mod(id, 1000) = 0"
            )  # fmt: skip

    def aggregate(self):
        """The roll-ups of the seed by SQL: the same sums the roll-up job writes, per hour (and per minute for the
        last 48 hours). Provider from the recipient domain (all of the seed's domains are named providers' or
        example.com)."""
        from django.db import connection

        provider = ("CASE m.rcpt_domain WHEN 'gmail.com' THEN 'google' WHEN 'outlook.com' THEN 'microsoft' "
                    "WHEN 'yahoo.com' THEN 'yahoo' ELSE 'other' END")  # fmt: skip
        lat = "extract(epoch from a.time - m.created)"
        recent = "AND a.time > now() - interval '48 hours'"
        for table, trunc, where in (("reports_hourrollup", "hour", ""), ("reports_minuterollup", "minute", recent)):
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} (bucket, tenant_id, domain_id, pool_id, source_ip, provider, campaign_id, "
                    "node, accepted, accepted_bytes, attempts, attempts_tls, delivered, delivered_bytes, deferred, "
                    "bounced, expired, complained, unsubscribed, opened, clicked, attempt_seconds, latency_seconds, "
                    "lat_1s, lat_5s, lat_15s, lat_1m, lat_5m, lat_15m, lat_1h, lat_4h, lat_1d, lat_inf) "
                    f"SELECT date_trunc('{trunc}', a.time), m.tenant_id, m.sending_domain_id, m.ip_pool_id, "
                    f"a.source_ip, {provider}, 0, a.node, 0, 0, count(*), count(*), "
                    "count(*) FILTER (WHERE a.status = 'delivered'), 0, "
                    "count(*) FILTER (WHERE a.status = 'deferred'), count(*) FILTER (WHERE a.status = 'bounced'), "
                    "0, 0, 0, 0, 0, sum(a.duration), "
                    f"coalesce(sum({lat}) FILTER (WHERE a.status = 'delivered'), 0), "
                    f"count(*) FILTER (WHERE a.status = 'delivered' AND {lat} <= 1), "
                    f"count(*) FILTER (WHERE a.status = 'delivered' AND {lat} > 1 AND {lat} <= 5), "
                    f"count(*) FILTER (WHERE a.status = 'delivered' AND {lat} > 5 AND {lat} <= 15), "
                    f"count(*) FILTER (WHERE a.status = 'delivered' AND {lat} > 15 AND {lat} <= 60), "
                    "0, 0, 0, 0, 0, 0 "
                    f"FROM queues_deliveryattempt a JOIN queues_message m ON m.id = a.message_id WHERE true {where} "
                    "GROUP BY 1, 2, 3, 4, 5, 6, 8"
                )  # fmt: skip
                cursor.execute(
                    f"INSERT INTO reports_{'replyhour' if trunc == 'hour' else 'replyminute'} (bucket, tenant_id, "
                    "provider, status, code, enhanced_code, category, count, text) "
                    f"SELECT date_trunc('{trunc}', a.time), m.tenant_id, {provider}, a.status, a.code, "
                    "a.enhanced_code, a.category, count(*), min(a.text) "
                    f"FROM queues_deliveryattempt a JOIN queues_message m ON m.id = a.message_id WHERE true {where} "
                    "GROUP BY 1, 2, 3, 4, 5, 6, 7"
                )  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO reports_rolluptotal (tenant_id, pool_id, source_ip, provider, accepted, accepted_bytes, "
                "attempts, attempts_tls, delivered, delivered_bytes, deferred, bounced, expired, complained, "
                "unsubscribed, opened, clicked, attempt_seconds, latency_seconds, lat_1s, lat_5s, lat_15s, lat_1m, "
                "lat_5m, lat_15m, lat_1h, lat_4h, lat_1d, lat_inf) "
                "SELECT tenant_id, pool_id, source_ip, provider, sum(accepted), sum(accepted_bytes), sum(attempts), "
                "sum(attempts_tls), sum(delivered), sum(delivered_bytes), sum(deferred), sum(bounced), sum(expired), "
                "sum(complained), sum(unsubscribed), sum(opened), sum(clicked), sum(attempt_seconds), "
                "sum(latency_seconds), sum(lat_1s), sum(lat_5s), sum(lat_15s), sum(lat_1m), sum(lat_5m), "
                "sum(lat_15m), sum(lat_1h), sum(lat_4h), sum(lat_1d), sum(lat_inf) "
                "FROM reports_hourrollup GROUP BY 1, 2, 3, 4"
            )  # fmt: skip
            cursor.execute("INSERT INTO reports_replytotal (tenant_id, provider, status, code, category, count) "
                           "SELECT tenant_id, provider, status, code, category, sum(count) FROM reports_replyhour "
                           "GROUP BY 1, 2, 3, 4, 5")  # fmt: skip

    def sizes(self):
        from django.db import connection

        with connection.cursor() as cursor:
            out = []
            for table in ("queues_deliveryattempt", "queues_message", "queues_messageevent", "reports_hourrollup",
                          "reports_minuterollup", "reports_replyhour", "reports_rolluptotal"):  # fmt: skip
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table])
                out.append(f"{table.split('_', 1)[1]} ~{cursor.fetchone()[0]:,}")
        return "rows: " + ", ".join(out)

    def bench_job(self):
        """The roll-up job over the newest 100,000 attempts (and their events, messages), rolled back."""
        from django.db import connection, transaction
        from django.utils import timezone

        from queues.models import DeliveryAttempt, Message
        from reports import rollups
        from reports.models import RollupCursor

        newest = DeliveryAttempt.objects.order_by("-id").values_list("id", flat=True).first()
        sample = 100_000
        with transaction.atomic():
            RollupCursor.objects.filter(name="attempts").update(last_id=newest - sample)
            RollupCursor.objects.filter(name="messages").update(
                last_id=Message.objects.order_by("-id").values_list("id", flat=True).first())  # fmt: skip
            started = time.perf_counter()
            read = rollups.roll_up(now=timezone.now() + timezone.timedelta(days=1), max_rows=sample)
            seconds = time.perf_counter() - started
            transaction.set_rollback(True)
        self.stdout.write(f"{'roll-up job':44} {read.get('attempts', 0):,} attempts in {seconds:.1f} s = "
                          f"{read.get('attempts', 0) / seconds:,.0f} attempts/s (rolled back)")  # fmt: skip
        connection.close()

    def timed(self, client, url, count, **headers):
        times = []
        client.get(url, secure=True, **headers)  # warm
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(url, secure=True, **headers)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}")
        return times, response

    def bench_pages(self, tenants, root, requests):
        from django.test import Client

        from deliveryhub.choices import Role
        from deliveryhub.models import Membership
        from deliveryhub.testing.cases import login_verified

        tenant = tenants[0]
        admin = self.user("admin@t00.bench.example")
        if admin is None:
            from deliveryhub.testing.cases import make_user

            admin = make_user("admin@t00.bench.example", tenant, Role.ADMIN)
        assert Membership.objects.filter(user=admin, tenant=tenant).exists()
        client = Client()
        login_verified(client, admin)
        for range_name in ("24h", "7d"):
            times, _ = self.timed(client, f"/monitoring/?range={range_name}", requests)
            self.report(f"tenant dashboard ({range_name})", times, 300)
        times, _ = self.timed(client, "/monitoring/?range=24h&fragment=1", requests)
        self.report("tenant dashboard live fragment (24h)", times, 300)
        operator = Client()
        login_verified(operator, root)
        for range_name in ("24h", "7d"):
            times, _ = self.timed(operator, f"/platform/monitoring/?range={range_name}", requests)
            self.report(f"platform dashboard ({range_name})", times, 300)

    def bench_metrics(self, key, requests):
        from django.test import Client
        from prometheus_client.parser import text_string_to_metric_families

        times, response = self.timed(Client(), "/metrics", requests, HTTP_AUTHORIZATION=f"Bearer {key}")
        families = list(text_string_to_metric_families(response.content.decode()))
        samples = sum(len(f.samples) for f in families)
        self.report("/metrics", times, 200)
        self.stdout.write(f"{'/metrics families':44} {len(families)} (target ≥ 40), {samples:,} samples")

    def bench_alerts(self, tenants):
        from django.db import transaction

        from deliveryhub import audit
        from reports import alerts
        from reports.models import AlertRule

        shapes = [("bounce_rate", 0.05, 15, 200, "pool"), ("complaint_rate", 0.001, 1440, 1000, "provider"),
                  ("deferral_rate", 0.3, 15, 200, "provider"), ("bounce_rate", 0.08, 60, 200, "source_ip"),
                  ("delivery_rate", 0.8, 60, 500, ""), ("unsubscribe_rate", 0.02, 1440, 1000, "domain"),
                  ("expired_rate", 0.01, 1440, 500, ""), ("oldest_queued_age", 1800, 0, 0, ""),
                  ("held_count", 10, 0, 0, ""), ("complaint_rate", 0.003, 10080, 1000, "")]  # fmt: skip
        with transaction.atomic(), audit.audit_context(principal=None):
            AlertRule.objects.filter(name__startswith="bench rule").delete()
            existing = AlertRule.objects.filter(enabled=True).count()
            for i in range(RULES - existing):
                metric, threshold, window, floor, group = shapes[i % len(shapes)]
                AlertRule.objects.create(tenant=tenants[i % len(tenants)] if i % 2 else None, name=f"bench rule {i}",
                                         metric=metric, threshold=threshold, window_minutes=window or 15,
                                         min_volume=floor, group_by=group, comparison="lt" if metric ==
                                         "delivery_rate" else "gt")  # fmt: skip
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            counts = alerts.evaluate_all()
            runs.append((time.perf_counter() - started) * 1000)
        self.stdout.write(f"{'alert evaluation, ' + str(counts['rules']) + ' rules':44} "
                          f"runs {', '.join(f'{r / 1000:.2f} s' for r in runs)} (target < 2 s a run)"
                          f"{' ok' if max(runs) < 2000 else ' MISSED'}; errors {counts['errors']}")  # fmt: skip
