"""`make run`: the whole DeliveryHub stack in one terminal.

Migrates, makes sure a first superuser exists, starts an embedded Redis when REDIS_URL is unset,
then runs each process as its own child with its output prefixed by its name:

    web        manage.py runserver (DELIVERYHUB_WEB_HOST:DELIVERYHUB_WEB_PORT, default 127.0.0.1:8000)
    worker     manage.py rqworker delivery default low --with-scheduler
    scheduler  manage.py scheduler   (if that command exists)
    smtpd      manage.py smtpd       (if that command exists)

Ctrl-C or SIGTERM stops the children (SIGTERM, then SIGKILL after STOP_TIMEOUT seconds; a second
Ctrl-C kills at once), the embedded Redis last. If a child dies on its own, the others are
stopped and the command exits non-zero.
"""

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from deliveryhub import embedded_redis

STOP_TIMEOUT = 10.0  # seconds a child gets to exit after SIGTERM
POLL_SECONDS = 0.2
RQ_QUEUES = ("delivery", "default", "low")
OPTIONAL_COMMANDS = ("scheduler", "smtpd", "capture_smtpd")  # started only once somebody has written them


def _parent_death_signal():
    """preexec_fn: the child gets SIGTERM if run_stack itself dies without cleaning up (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    PR_SET_PDEATHSIG = 1

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # parent already gone between fork and prctl
            os._exit(1)

    return preexec


class Child:
    def __init__(self, name, proc, owned=True):
        self.name = name
        self.proc = proc
        self.owned = owned  # False: a Redis another run started; we leave it alone
        self.reader = None

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Command(BaseCommand):
    help = "Run the whole stack (web, worker, scheduler, smtpd, embedded Redis) until Ctrl-C."
    requires_system_checks = []

    def handle(self, *args, **options):
        self.output_lock = threading.Lock()
        self.stop_requested = threading.Event()
        self.hurry = threading.Event()
        self.stop_signal = None
        self.redis = None
        self.children = []
        self.width = len("scheduler")
        self.preexec = _parent_death_signal()
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DELIVERYHUB_VAR_DIR": str(Path(settings.VAR_DIR).absolute()),
        }
        if settings.DEMO_MODE:  # the demo's routes may point at the capture server and other local test peers
            self.env.setdefault("DELIVERYHUB_OUTBOUND_ALLOW_PRIVATE_TARGETS", "true")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        failure = None
        try:
            self._start_redis()
            if not self.stop_requested.is_set():
                self._prepare_database()
            if not self.stop_requested.is_set():
                self._start_processes()
                self._banner()
                failure = self._supervise()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failure:
            raise CommandError(failure)
        self.say("stopped.")

    # --- startup -------------------------------------------------------------------------

    def _start_redis(self):
        if os.environ.get("REDIS_URL"):
            self.say(f"using Redis at REDIS_URL ({settings.REDIS_URL.split('@')[-1]})")
            return
        socket_path = Path(settings.EMBEDDED_REDIS_SOCKET)
        if embedded_redis.ping(socket_path):
            self.say(f"reusing the embedded Redis already answering on {socket_path}")
            self.redis = Child("redis", None, owned=False)
            return
        self.say(f"starting embedded Redis on {socket_path}")
        try:
            proc = embedded_redis.start(socket_path, settings.VAR_DIR, **self._popen_kwargs())
        except RuntimeError as exc:
            raise CommandError(f"embedded Redis failed to start: {exc}") from None
        self.redis = Child("redis", proc)
        self._attach_reader(self.redis)

    def _prepare_database(self):
        call_command("migrate", interactive=False)
        if settings.PRODUCTION:
            call_command("collectstatic", interactive=False, verbosity=1)
        call_command("ensure_superuser")
        call_command("ensure_local_node")  # node "local", IP 127.0.0.1, shared pool "default" for every tenant
        if settings.DEMO_MODE:
            call_command("ensure_demo")  # tenant "demo" + domain demo.test, mail captured in the Test inbox
        connections.close_all()  # children open their own; no SQLite handle held across the run

    def _start_processes(self):
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        self.host = settings.WEB_HOST
        self.port = settings.WEB_PORT
        addr = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        web = [*manage, "runserver", addr, "--noreload"]
        if not settings.DEBUG:
            web.append("--insecure")  # runserver serves static files only with Django's DEBUG otherwise
        plan = [
            ("web", web),
            # --verbosity 0: RQ's per-job INFO lines every few seconds drown the useful output
            ("worker", [*manage, "rqworker", "--verbosity", "0", f"delivery-{settings.NODE_NAME}", *RQ_QUEUES,
                        "--with-scheduler",
                        "--worker-class", "queues.delivery.worker.DeliveryWorker"]),
        ]
        available = get_commands()
        for name in OPTIONAL_COMMANDS:
            if name in available:
                plan.append((name, [*manage, name]))
            else:
                self.say(f"no `{name}` command yet: not starting {name}")
        for name, args in plan:
            child = Child(name, subprocess.Popen(args, cwd=settings.BASE_DIR, **self._popen_kwargs()))
            self.children.append(child)
            self._attach_reader(child)
            self.say(f"started {name} (pid {child.proc.pid}): {' '.join(args[1:])}")

    def _popen_kwargs(self):
        return {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
            "env": self.env,
            # Own process group: the terminal's Ctrl-C reaches only us, and we stop children in order.
            "start_new_session": True,
            "preexec_fn": self.preexec,
        }

    def _banner(self):
        admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        connections.close_all()
        shown_host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        url = f"http://{shown_host}:{self.port}/"
        login = admin.get_username() if admin else "(no superuser)"
        lines = [
            f"DeliveryHub is starting at {url}",
            f"log in as {login} (the password was printed when that user was created;",
            "  reset it with: .venv/bin/python manage.py changepassword " + login + ")",
            "Ctrl-C stops everything.",
        ]
        bar = "-" * max(len(line) for line in lines)
        for line in (bar, *lines, bar):
            self.say(line)

    # --- running ---------------------------------------------------------------------------

    def _supervise(self):
        watched = [*self.children, *([self.redis] if self.redis and self.redis.proc else [])]
        while not self.stop_requested.wait(POLL_SECONDS):
            for child in watched:
                code = child.proc.poll()
                if code is not None:
                    return f"{child.name} exited unexpectedly with status {code}; stopped the others."
        self.say(f"got {self.stop_signal}, stopping...")
        return None

    def _on_signal(self, signum, frame):
        if self.stop_requested.is_set():
            self.hurry.set()  # second Ctrl-C: no more waiting
        self.stop_signal = signal.Signals(signum).name
        self.stop_requested.set()

    def _attach_reader(self, child):
        child.reader = threading.Thread(target=self._pump, args=(child,), name=f"output-{child.name}", daemon=True)
        child.reader.start()

    def _pump(self, child):
        prefix = f"{child.name:<{self.width}} | "
        for raw in iter(child.proc.stdout.readline, b""):
            self._write(prefix + raw.decode("utf-8", "replace").rstrip("\r\n"))
        child.proc.stdout.close()

    def say(self, message):
        self._write(f"{'stack':<{self.width}} | {message}")

    def _write(self, line):
        with self.output_lock:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                pass

    # --- shutdown --------------------------------------------------------------------------

    def _stop_all(self):
        self._stop([child for child in reversed(self.children)])
        if self.redis and self.redis.owned and self.redis.proc:
            self._stop([self.redis])

    def _stop(self, children):
        running = [child for child in children if child.alive]
        for child in running:
            self.say(f"stopping {child.name} (pid {child.proc.pid})")
            self._signal(child, signal.SIGTERM, group=False)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(child.alive for child in running) and time.monotonic() < deadline and not self.hurry.is_set():
            time.sleep(POLL_SECONDS)
        for child in running:
            if child.alive:
                self.say(f"{child.name} did not stop in time: killing it")
                self._signal(child, signal.SIGKILL, group=True)
        for child in children:
            if child.proc is None:
                continue
            child.proc.wait()
            self._signal(child, signal.SIGKILL, group=True)  # leftovers in its group (e.g. an RQ work horse)
            if child.reader is not None:
                child.reader.join(timeout=2)

    @staticmethod
    def _signal(child, sig, group):
        try:
            if group:
                os.killpg(child.proc.pid, sig)  # start_new_session: pgid == pid
            else:
                child.proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass
