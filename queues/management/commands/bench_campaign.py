"""
`manage.py bench_campaign` (`make bench-campaign`): campaigns at scale on this machine, each figure beside its target.

Like `make bench`, it runs against throw-away databases and a throw-away Redis under a temporary directory (the
command re-runs itself with that environment), in production mode:

1. import: a generated CSV of `--rows` rows (email plus three custom fields, 1% invalid rows) into a list, by the
   real import job in a separate `rqworker` process (SimpleWorker: the job runs in the process measured), on SQLite
   and, when BENCH_DATABASE_URL names an empty PostgreSQL database, on PostgreSQL too. Target: ≤ 60 s, peak memory
   of the job's process < 300 MB;
2. fan-out: a campaign to those contacts started, its Message rows written. Target: ≤ 60 s;
3. personalised delivery: `--messages` messages of a campaign (three variables, ~5 KB) through the same workers,
   scheduler loop and smtp-sink as `make bench`, right after the same number of transactional messages, and the
   transactional run again after it (the machine's pace drifts). Target: ≥ 90% of the transactional rate.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from .bench import NODE, SINK_BACKLOG, SINK_MAX_CONNECTIONS, SMTP_SINK, free_port, peak_rss_mb, wait_port
from .bench import Command as DeliveryBench

IMPORT_TARGET_SECONDS = 60
IMPORT_TARGET_MB = 300
FANOUT_TARGET_SECONDS = 60
RATE_TARGET = 0.90
INVALID_EVERY = 100  # one row in a hundred is invalid
BENCH_BODY = (
    "<html><body>\n<p>Hello {{ contact.name | default('there') }},</p>\n"
    "<p>Our {{ contact.attributes.plan }} customers in {{ contact.attributes.city }} get 20% off this week.</p>\n"
    + "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et\n"
    "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip.</p>\n"
    * 22
    + '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>\n</body></html>\n'
)
CITIES = ("Lyon", "Paris", "Oslo", "Porto", "Kyiv", "Turin", "Ghent", "Malmö")
PLANS = ("gold", "silver", "bronze")


def write_csv(path, rows, seed=13):
    """A contacts file: header, `rows` data rows, every INVALID_EVERY-th one an invalid address."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("email,name,city,plan\n")
        for i in range(rows):
            address = f"user{i}@@broken" if i % INVALID_EVERY == INVALID_EVERY - 1 else f"user{i}@dest{i % 50}.example"
            out.write(f"{address},User {i},{rng.choice(CITIES)},{rng.choice(PLANS)}\n")


class Command(BaseCommand):
    help = "Benchmark campaigns: a 1,000,000-row CSV import, the fan-out of a 1,000,000-recipient campaign, and the " \
        "rate of personalised delivery against transactional delivery in the same run."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--messages", type=int, default=20_000, help="messages of each delivery run (0: skip)")
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--run", help=argparse_suppress())  # internal: the inner run's work directory
        parser.add_argument("--phase", help=argparse_suppress())

    def handle(self, *args, rows, messages, workers, run=None, phase=None, **options):
        if run:
            return self.inner(Path(run), phase, rows, messages, workers)
        if messages and not Path(SMTP_SINK).exists():
            raise CommandError(f"{SMTP_SINK} is missing: install Postfix (apt-get install postfix).")
        import secrets

        from deliveryhub import embedded_redis

        workdir = Path(tempfile.mkdtemp(prefix="deliveryhub-bench-campaign-"))
        env = {**os.environ, "DELIVERYHUB_NODE": NODE, "DELIVERYHUB_VAR_DIR": str(workdir), "DEBUG": "false",
               "DELIVERYHUB_DEMO_MODE": "false", "DELIVERYHUB_SECRET_KEY": secrets.token_urlsafe(50),
               "DELIVERYHUB_DATA_KEY": secrets.token_urlsafe(50), "DELIVERYHUB_LOG_LEVEL": "WARNING",
               "DELIVERYHUB_PSEUDONYM_KEY": secrets.token_urlsafe(50)}
        redis_proc = embedded_redis.start(workdir / "redis.sock", workdir, persist=False,
                                          stdout=open(workdir / "redis.log", "w"), stderr=subprocess.STDOUT)
        env["REDIS_URL"] = f"unix://{workdir / 'redis.sock'}"
        databases = [("SQLite", f"sqlite:///{workdir / 'bench.sqlite3'}")]
        if os.environ.get("BENCH_DATABASE_URL"):
            databases.append(("PostgreSQL", os.environ["BENCH_DATABASE_URL"]))
        try:
            csv_path = workdir / "contacts.csv"
            write_csv(csv_path, rows)
            for label, url in databases:
                self.stdout.write(f"== {label}")
                self.child(workdir, "data", rows, messages, workers, {**env, "DATABASE_URL": url, "BENCH_DB": label})
            if messages:  # on a database of its own (SQLite, like `make bench`)
                self.stdout.write("== personalised delivery (SQLite)")
                url = f"sqlite:///{workdir / 'delivery.sqlite3'}"
                self.child(workdir, "delivery", rows, messages, workers, {**env, "DATABASE_URL": url,
                                                                          "BENCH_DB": "SQLite"})
        finally:
            embedded_redis.stop(redis_proc)
        shutil.rmtree(workdir, ignore_errors=True)

    def child(self, workdir, phase, rows, messages, workers, env):
        cmd = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_campaign", "--run", str(workdir),
               "--phase", phase, "--rows", str(rows), "--messages", str(messages), "--workers", str(workers)]
        done = subprocess.run(cmd, env=env, cwd=settings.BASE_DIR)
        if done.returncode:
            raise CommandError(f"The {phase} phase failed (exit {done.returncode}); files kept in {workdir}")

    # -- the inner runs -------------------------------------------------------------------------------------------

    def setup(self):
        import django_rq
        from django.core.management import call_command

        from deliveryhub import services as core
        from queues.models import ContactList
        from queues.testing import make_sending_domain, make_sending_ips

        call_command("migrate", verbosity=0)
        django_rq.get_connection("default").flushdb()
        tenant = core.create_tenant("bench", "Bench")
        make_sending_domain(tenant, "bench.example")
        make_sending_ips(("127.0.0.2", "127.0.0.3"), node_name=NODE)
        return tenant, ContactList.objects.create(tenant=tenant, name="Everybody")

    def inner(self, workdir, phase, rows, messages, workers):
        if phase == "data":
            return self.data_phase(workdir, rows)
        return self.delivery_phase(workdir, messages, workers)

    def data_phase(self, workdir, rows):
        from django.core.files import File

        from queues.campaigns import fanout, imports, services
        from queues.models import ContactImport, Message, Route

        tenant, contact_list = self.setup()
        Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=9)  # providers by name, no DNS
        label = os.environ.get("BENCH_DB", "")
        with open(workdir / "contacts.csv", "rb") as handle:
            imp = imports.start_import(tenant, File(handle, name="contacts.csv"), contact_list=contact_list)
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        worker = subprocess.Popen([*manage, "rqworker", "default", "--burst", "--worker-class", "rq.SimpleWorker"],
                                  stdout=open(workdir / "import-worker.log", "w"), stderr=subprocess.STDOUT)
        peak = 0.0
        while worker.poll() is None:
            peak = max(peak, peak_rss_mb(worker.pid) or 0.0)
            time.sleep(0.1)
        imp = ContactImport.objects.get(pk=imp.pk)
        if imp.state != "completed" or imp.started is None:
            raise CommandError(f"The import ended {imp.state}: {imp.error}")
        seconds = (imp.finished - imp.started).total_seconds()
        self.figure(f"{label} import of {imp.rows_read:,} rows ({imp.imported:,} contacts, {imp.invalid:,} invalid)",
                    seconds, IMPORT_TARGET_SECONDS, "s")
        self.figure(f"{label} import job's peak memory", peak, IMPORT_TARGET_MB, "MB")
        campaign = services.create_campaign(tenant, name="Everybody", subject="Hi {{ contact.name }}",
                                            from_header="Bench <news@bench.example>", html=BENCH_BODY,
                                            lists=[contact_list])
        services.start_campaign(campaign)
        started = time.monotonic()
        count = fanout.fan_out(campaign.pk)
        seconds = time.monotonic() - started
        written = Message.objects.filter(content__campaign=campaign).count()
        if written != imp.imported:
            raise CommandError(f"Fan-out wrote {written} messages for {imp.imported} contacts")
        self.figure(f"{label} fan-out of {count:,} recipients (Message rows written)", seconds,
                    FANOUT_TARGET_SECONDS, "s")

    def figure(self, label, value, target, unit):
        verdict = "ok" if value <= target else "MISSED"
        self.stdout.write(f"{label}: {value:.1f} {unit} (target ≤ {target} {unit}) {verdict}")

    def delivery_phase(self, workdir, count, worker_count):
        from deliveryhub import services as core
        from deliveryhub.choices import Role
        from queues.models import Contact, ContactList, Route, Subscription

        tenant, _ = self.setup()
        _, key = core.create_api_key(tenant=tenant, name="bench", role=Role.ADMIN)
        contact_list = ContactList.objects.create(tenant=tenant, name="Personalised")
        rng = random.Random(7)
        contacts = Contact.objects.bulk_create(
            [Contact(tenant=tenant, email=f"reader{i}@dest{i % 4}.example", domain=f"dest{i % 4}.example",
                     name=f"Reader {i}", attributes={"city": rng.choice(CITIES), "plan": rng.choice(PLANS)})
             for i in range(count)], batch_size=2000)  # fmt: skip
        Subscription.objects.bulk_create([Subscription(contact=c, contact_list=contact_list) for c in contacts],
                                         batch_size=2000)
        port = free_port()
        sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", "-m", str(SINK_MAX_CONNECTIONS), f"127.0.0.1:{port}",
                                 str(SINK_BACKLOG)], stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            Route.objects.create(tenant=tenant, pattern="*", host="127.0.0.1", port=port)
            bench = PersonalisedBench(tenant, contact_list, stdout=self.stdout)
            before = bench.run_once(workdir, key, count, worker_count, "transactional-1", sink.pid)
            bench.report("transactional", before)
            personalised = bench.run_once(workdir, key, count, worker_count, "campaign", sink.pid)
            bench.report("personalised campaign", personalised)
            after = bench.run_once(workdir, key, count, worker_count, "transactional-2", sink.pid)
            bench.report("transactional again", after)
        finally:
            sink.terminate()
        transactional = (before["delivery_rate"] + after["delivery_rate"]) / 2
        ratio = personalised["delivery_rate"] / transactional
        verdict = "ok" if ratio >= RATE_TARGET else "MISSED"
        self.stdout.write(
            f"personalised delivery {personalised['delivery_rate']:.0f} msg/s = {100 * ratio:.1f}% of transactional "
            f"{transactional:.0f} msg/s (the mean of the runs before and after; target ≥ {100 * RATE_TARGET:.0f}%) "
            f"{verdict}"
        )


class PersonalisedBench(DeliveryBench):
    """`make bench`'s delivery run, with a campaign's fan-out instead of the API intake for the `campaign` run."""

    def __init__(self, tenant, contact_list, **kwargs):
        super().__init__(**kwargs)
        self.tenant, self.contact_list = tenant, contact_list

    def intake(self, key, count, tag):
        if tag != "campaign":
            return super().intake(key, count, tag)
        from queues.campaigns import fanout, services

        campaign = services.create_campaign(self.tenant, name="Personalised", tag=tag, html=BENCH_BODY,
                                            subject="{{ contact.name }}: this week in {{ contact.attributes.city }}",
                                            from_header="Bench <news@bench.example>", lists=[self.contact_list])
        services.start_campaign(campaign)
        written = fanout.fan_out(campaign.pk)
        if written != count:
            raise CommandError(f"The campaign has {written} recipients, not {count}")


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
