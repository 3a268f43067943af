"""Two worker processes pick source IPs at the same time: warm-up caps hold exactly (Redis INCRBY is the gate).

The processes are real (`subprocess`), share the test Redis and a scratch database they can both see: a
SQLite file by default, or a scratch database on the PostgreSQL server of DATABASE_URL (CI).
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import dj_database_url
import pytest
from django.conf import settings

from ippools import counters

ROOT = Path(__file__).resolve().parents[2]
GO_KEY = "deliveryhub:ippools:test:go"
CAPS = {"google": 40, "total": 1000}
ADDRESSES = ("192.0.2.1", "192.0.2.2", "192.0.2.3")

SETUP = f"""
from django.utils import timezone
from deliveryhub import services as core
from ippools import services
from ippools.testing import make_ip, make_node, make_plan, make_pool
tenant = core.create_tenant("conc", "Concurrency")
node = make_node("n1")
plan = make_plan("conc", days=[{CAPS!r}])
ips = [make_ip(a, node, plan=plan) for a in {ADDRESSES!r}]
make_pool("conc", tenant=tenant, members=[(ip, w) for ip, w in zip(ips, (1, 2, 3))])
"""

WORKER = """
import json, os, random, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deliveryhub.settings")
django.setup()
from deliveryhub.models import Tenant
from ippools import counters, services
from ippools.models import IPPool
tenant, pool = Tenant.objects.get(slug="conc"), IPPool.objects.get(name="conc")
rng = random.Random(int(sys.argv[1]))
counters.get_redis().blpop(sys.argv[2], timeout=60)
got, picks = {}, 0
while True:
    try:
        selection = services.select_source_ip(tenant=tenant, pool=pool, provider="google", count=rng.randint(1, 5))
    except services.NoCapacity:
        break
    picks += 1
    got[selection.ip.address] = got.get(selection.ip.address, 0) + selection.reserved
print(json.dumps({"got": got, "picks": picks}))
"""

FLUSH_AND_READ = """
import json
from ippools import services
from ippools.models import IPDailyUsage
services.flush_usage()
print(json.dumps({u.ip.address: u.reserved for u in IPDailyUsage.objects.filter(provider="google")}))
"""


@pytest.fixture
def scratch_database(tmp_path):
    """A DATABASE_URL for a fresh database the subprocesses share, migrated; removed afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        import psycopg

        params = dj_database_url.parse(url)
        name = f"dh_ippools_conc_{uuid.uuid4().hex[:8]}"
        admin = dict(
            host=params["HOST"] or None,
            port=params["PORT"] or None,
            user=params["USER"] or None,
            password=params["PASSWORD"] or None,
            dbname="postgres",
            autocommit=True,
        )
        with psycopg.connect(**admin) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        scheme, rest = url.split("://", 1)
        base = rest.rsplit("/", 1)[0]
        yield f"{scheme}://{base}/{name}"
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield f"sqlite:///{tmp_path / 'concurrency.sqlite3'}"


def run(args, env, **kwargs):
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True, **kwargs)


def test_two_processes_never_exceed_caps(scratch_database, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": scratch_database,
        "REDIS_URL": settings.REDIS_URL,
        "DELIVERYHUB_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "deliveryhub.settings",
    }
    client = counters.get_redis()
    client.flushdb()
    manage = [sys.executable, "manage.py"]
    run([*manage, "migrate", "--noinput", "-v", "0"], env)
    run([*manage, "shell", "-c", SETUP], env)

    go = f"{GO_KEY}:{uuid.uuid4().hex}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(seed), go],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    client.rpush(go, "go", "go")  # both start together
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    totals = {address: sum(r["got"].get(address, 0) for r in results) for address in ADDRESSES}
    assert totals == {address: CAPS["google"] for address in ADDRESSES}, results  # exactly the cap, never more
    assert all(r["picks"] > 0 for r in results), results  # both processes really competed

    flushed = json.loads(run([*manage, "shell", "-c", FLUSH_AND_READ], env).stdout.strip().splitlines()[-1])
    assert flushed == totals  # the database (the authority) agrees after the flush
