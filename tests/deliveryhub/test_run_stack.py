"""`make run` plumbing: the embedded Redis helper and the first-superuser command."""

import io
import signal
import tempfile
from pathlib import Path

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from deliveryhub import embedded_redis


def test_embedded_redis_starts_answers_and_stops():
    # A short directory: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="dh-redis-") as tmp:
        socket_path = Path(tmp) / "redis.sock"
        assert not embedded_redis.ping(socket_path)
        proc = embedded_redis.start(socket_path, persist=False)
        try:
            assert proc.poll() is None
            client = redis.Redis(unix_socket_path=str(socket_path))
            assert client.ping()
            client.set("deliveryhub:test", "ok")
            assert client.get("deliveryhub:test") == b"ok"
            client.close()
            assert embedded_redis.ping(socket_path)
        finally:
            code = embedded_redis.stop(proc, timeout=5)
        assert code in (0, -signal.SIGTERM)
        assert not embedded_redis.ping(socket_path)


def test_embedded_redis_refuses_too_long_socket_path():
    with pytest.raises(RuntimeError, match="too long"):
        embedded_redis.start("/tmp/" + "x" * 120 + "/redis.sock")


@pytest.mark.django_db
def test_ensure_superuser_creates_once_and_prints_password_once(monkeypatch):
    monkeypatch.delenv("DELIVERYHUB_ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("DELIVERYHUB_ADMIN_PASSWORD", raising=False)
    first = io.StringIO()
    call_command("ensure_superuser", stdout=first)
    user = get_user_model().objects.get(is_superuser=True)
    assert user.get_username() == "admin@localhost"
    password = next(line.split()[-1] for line in first.getvalue().splitlines() if "password:" in line)
    assert user.check_password(password)

    second = io.StringIO()
    call_command("ensure_superuser", stdout=second)
    assert password not in second.getvalue()
    assert "exists" in second.getvalue()
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


@pytest.mark.django_db
def test_ensure_superuser_from_environment(monkeypatch):
    monkeypatch.setenv("DELIVERYHUB_ADMIN_EMAIL", "ops@example.test")
    monkeypatch.setenv("DELIVERYHUB_ADMIN_PASSWORD", "correct horse battery staple")
    out = io.StringIO()
    call_command("ensure_superuser", stdout=out)
    user = get_user_model().objects.get(is_superuser=True)
    assert user.get_username() == "ops@example.test"
    assert user.email == "ops@example.test"
    assert user.check_password("correct horse battery staple")
    assert "correct horse" not in out.getvalue()


@pytest.mark.django_db
def test_ensure_superuser_rejects_weak_password(monkeypatch):
    monkeypatch.setenv("DELIVERYHUB_ADMIN_PASSWORD", "admin")
    with pytest.raises(CommandError, match="too weak"):
        call_command("ensure_superuser", stdout=io.StringIO())
    assert not get_user_model().objects.exists()
