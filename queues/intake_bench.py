"""
The intake half of `manage.py bench` (alone: `manage.py bench --intake-only`, `make bench-intake`).

Three figures, each measured on its own (no worker, scheduler or sink running meanwhile), against the bench's
throw-away database, with ~5 KB single-recipient structured messages as an application sends them:

1. batch, in process: `POST /api/v1/messages/batch/` (500 messages a request) through Django's request handler in
   this one process (one client, one core, no HTTP): the per-core cost of intake;
2. batch over HTTP: the same requests from two clients at once to gunicorn as production runs it
   (`deliveryhub/gunicorn.py`): what this machine takes in with both cores;
3. single messages: 20 clients at once, each posting one message and waiting for its 202 before the next
   (`POST /api/v1/messages/`), to the same gunicorn: p50/p95/p99 of the response time.

Request bodies are encoded before the clock starts; the HTTP client is one asyncio loop (about 50 µs of CPU a
request), so what is timed is the server's work. Each figure comes with the CPU time it cost per message (Django's
processes, and PostgreSQL's backends when the database is PostgreSQL) and the load average when it started: on a
machine shared with other work the rates follow the load, the CPU per message much less.
"""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import Client

BATCH_TARGET = 1500  # msg/s through /api/v1/messages/batch/ (issue 11)
SINGLE_P95_TARGET_MS = 50  # p95 of POST /api/v1/messages/ with SINGLE_CLIENTS clients (issue 11)
BATCH_SIZE = 500  # messages per batch request
BATCH_CLIENTS = 2  # concurrent batch clients over HTTP (one per core)
SINGLE_CLIENTS = 20  # concurrent single-message clients
TAG_PREFIX = "intake-"  # tag of the messages these runs take in
SINGLE_WARMUP = 200  # requests before the timed ones (workers' first requests import and connect)


def message(index, body, tag, sender="Bench <bench@bench.example>"):
    """One structured message as an application sends it: a From with a name, one recipient, subject, text."""
    return {"from": sender, "to": [f"user{index}@dest{index % 4}.example"], "subject": f"Bench {index}",
            "text": body, "tag": tag}  # fmt: skip


def message_body(size):
    """`size` characters of text on one line (as HTML often is): sent quoted-printable, lines folded."""
    return ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * (size // 57 + 1))[:size]


def batch_bodies(count, body, tag, start=0):
    """Encoded `{"messages": [...]}` bodies of BATCH_SIZE messages each, `count` messages in all."""
    return [
        json.dumps(
            {"messages": [message(i, body, tag) for i in range(first, min(start + count, first + BATCH_SIZE))]}
        ).encode()
        for first in range(start, start + count, BATCH_SIZE)
    ]


def cpu_seconds(pid):
    """CPU time (user + system) a process has used so far, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_pids():
    """The PostgreSQL backends serving this database (they run on this machine in the bench); none for SQLite."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [pid for (pid,) in cursor.fetchall()]


class Meter:
    """Wall time, and the CPU time of Django's processes and of the database's, over a `with` block."""

    def __init__(self, django_pids):
        self.django_pids = django_pids  # callable: the pids doing Django's work

    def __enter__(self):
        self.load = os.getloadavg()[0]
        self.before = {pid: cpu_seconds(pid) or 0.0 for pid in [*self.django_pids(), *database_pids()]}
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.monotonic() - self.started
        self.django_cpu = sum((cpu_seconds(pid) or 0.0) - self.before.get(pid, 0.0) for pid in self.django_pids())
        self.database_cpu = sum((cpu_seconds(pid) or 0.0) - self.before.get(pid, 0.0) for pid in database_pids())

    def cpu_per(self, count):
        text = f"CPU {1000 * self.django_cpu / count:.2f} ms Django"
        if connection.vendor == "postgresql":
            text += f" + {1000 * self.database_cpu / count:.2f} ms PostgreSQL"
        return f"{text} a message, load average {self.load:.1f}"


def batch_in_process(key, count, body, tag):
    """Messages a second through Django's handler in this process (Django's test client: no HTTP, no thread)."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    bodies = batch_bodies(count, body, tag)
    with Meter(lambda: [os.getpid()]) as meter:
        for data in bodies:
            response = client.post("/api/v1/messages/batch/", data, content_type="application/json")
            if response.status_code != 202:
                raise RuntimeError(f"Intake failed: {response.status_code} {response.content[:500]!r}")
    return count / meter.elapsed, meter


class Gunicorn:
    """gunicorn serving this project with the production config on a loopback port, for as long as the block lasts."""

    def __init__(self, workdir, port):
        self.port = port
        self.log = workdir / "gunicorn.log"
        self.proc = None

    def __enter__(self):
        env = {**os.environ, "DELIVERYHUB_WEB_BIND": f"127.0.0.1:{self.port}"}
        cmd = [str(Path(sys.executable).with_name("gunicorn")), "-c", "python:deliveryhub.gunicorn", "deliveryhub.wsgi"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR, stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()[-2000:]}")
            try:
                asyncio.run(request(self.port, "GET", "/api/v1/", b"", {}))
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start within 30 s")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(30)

    @property
    def workers(self):
        """Worker processes (the master's children)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(pid) for pid in children]


async def request(port, method, path, body, headers):
    """(status, seconds) of one HTTP/1.1 request on a new connection (gunicorn's sync workers close it)."""
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
    response = await reader.read()
    writer.close()
    elapsed = time.perf_counter() - started
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return status, elapsed, response


async def _closed_loop(port, path, bodies, key, clients):
    """`clients` tasks, each sending the next body and waiting for its answer; the response times, in order."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    queue = list(reversed(bodies))
    times = []

    async def client():
        while queue:
            status, elapsed, response = await request(port, "POST", path, queue.pop(), headers)
            if status != 202:
                raise RuntimeError(f"{path} answered {status}: {response[:500]!r}")
            times.append(elapsed)

    await asyncio.gather(*(client() for _ in range(clients)))
    return times


def batch_http(server, key, count, body, tag):
    """Messages a second through gunicorn, BATCH_CLIENTS clients posting batches at once."""
    bodies = batch_bodies(count, body, tag)
    with Meter(lambda: server.workers) as meter:
        asyncio.run(_closed_loop(server.port, "/api/v1/messages/batch/", bodies, key, BATCH_CLIENTS))
    return count / meter.elapsed, meter


def single_latency(server, key, count, body, tag):
    """Response times of `count` single-message POSTs from SINGLE_CLIENTS clients at once (after a warm-up)."""
    path = "/api/v1/messages/"
    warmup = [json.dumps(message(i, body, tag)).encode() for i in range(SINGLE_WARMUP)]
    asyncio.run(_closed_loop(server.port, path, warmup, key, SINGLE_CLIENTS))
    bodies = [json.dumps(message(SINGLE_WARMUP + i, body, tag)).encode() for i in range(count)]
    with Meter(lambda: server.workers) as meter:
        times = sorted(asyncio.run(_closed_loop(server.port, path, bodies, key, SINGLE_CLIENTS)))
    return {
        "meter": meter,
        "requests": count,
        "rate": count / meter.elapsed,
        "p50": 1000 * statistics.median(times),
        "p95": 1000 * times[int(len(times) * 0.95)],
        "p99": 1000 * times[int(len(times) * 0.99)],
        "max": 1000 * times[-1],
    }


def run(workdir, key, *, batch_count, single_count, body_bytes, free_port):
    """All three figures; returns the lines to print."""
    body = message_body(body_bytes - 600)  # headers and JSON around it make up the rest
    in_process, in_process_meter = batch_in_process(key, batch_count, body, TAG_PREFIX + "in-process")
    with Gunicorn(workdir, free_port()) as server:
        workers = len(server.workers)
        over_http, http_meter = batch_http(server, key, batch_count, body, TAG_PREFIX + "http")
        single = single_latency(server, key, single_count, body, TAG_PREFIX + "single")
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    verdict = {True: "met", False: "MISSED"}
    return [
        f"intake ({database}, {body_bytes} B structured messages, target batch >= {BATCH_TARGET} msg/s, "
        f"single p95 < {SINGLE_P95_TARGET_MS} ms with {SINGLE_CLIENTS} clients):",
        f"  batch in process (1 client, {BATCH_SIZE} a request): {batch_count} messages, {in_process:.0f} msg/s "
        f"[{verdict[in_process >= BATCH_TARGET]}] ({in_process_meter.cpu_per(batch_count)})",
        f"  batch over HTTP (gunicorn, {workers} workers, {BATCH_CLIENTS} clients): {batch_count} messages, "
        f"{over_http:.0f} msg/s [{verdict[over_http >= BATCH_TARGET]}] ({http_meter.cpu_per(batch_count)})",
        f"  single over HTTP ({SINGLE_CLIENTS} clients): {single['requests']} requests, {single['rate']:.0f} req/s, "
        f"p50 {single['p50']:.1f} ms, p95 {single['p95']:.1f} ms, p99 {single['p99']:.1f} ms, max "
        f"{single['max']:.0f} ms [{verdict[single['p95'] < SINGLE_P95_TARGET_MS]}] "
        f"({single['meter'].cpu_per(single_count)})",
    ]
