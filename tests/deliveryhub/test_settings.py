"""Settings from the environment: typed helpers and the production-mode secret check."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_settings(env_overrides, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERYHUB_") and k != "DEBUG"}
    env.update({"DELIVERYHUB_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "deliveryhub.settings"})
    env.update(env_overrides)
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY[:4])"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_production_without_secret_fails_fast_with_a_clear_message(tmp_path):
    result = run_settings({"DEBUG": "false"}, tmp_path)
    assert result.returncode != 0
    assert "DELIVERYHUB_SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_production_reads_secrets_from_env_and_files(tmp_path):
    secret_file = tmp_path / "data.key"
    secret_file.write_text("file-data-key\n")
    result = run_settings(
        {"DEBUG": "false", "DELIVERYHUB_SECRET_KEY": "abcd-prod-secret", "DELIVERYHUB_DATA_KEY_FILE": str(secret_file),
         "DELIVERYHUB_PSEUDONYM_KEY": "prod-pseudonym-key"},
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "abcd"


def test_production_without_pseudonym_key_fails_fast(tmp_path):
    result = run_settings({"DEBUG": "false", "DELIVERYHUB_SECRET_KEY": "s", "DELIVERYHUB_DATA_KEY": "d"}, tmp_path)
    assert result.returncode != 0
    assert "DELIVERYHUB_PSEUDONYM_KEY is not set" in result.stderr


def test_dev_generates_a_key_once_and_keeps_it(tmp_path):
    first = run_settings({}, tmp_path)
    second = run_settings({}, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("value", ["maybe", "2x"])
def test_bad_typed_values_are_refused(tmp_path, value):
    result = run_settings({"DEBUG": value}, tmp_path)
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def run_setting(name, env_overrides, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERYHUB_") and k != "DEBUG"}
    env.update({"DELIVERYHUB_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "deliveryhub.settings"})
    env.update(env_overrides)
    code = f"import django; django.setup(); from django.conf import settings; print(repr(settings.{name}))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DELIVERYHUB_SMTP_CONNECT_TIMEOUT", "abc", "DELIVERYHUB_SMTP_CONNECT_TIMEOUT must be a number, got 'abc'"),
        ("DELIVERYHUB_RETRY_JITTER", "nan", "DELIVERYHUB_RETRY_JITTER must be a finite number"),
        ("DELIVERYHUB_SMTP_MAX_CONNECTIONS_PER_DESTINATION", "abc", "must be an integer"),
    ],
)
def test_bad_numbers_fail_fast_with_the_variable_named(tmp_path, variable, value, message):
    result = run_setting("SMTP_CONNECT_TIMEOUT", {variable: value}, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr
    assert "ValueError" not in result.stderr.replace("raise ImproperlyConfigured", "")


def test_float_settings_read_numbers(tmp_path):
    result = run_setting("SMTP_CONNECT_TIMEOUT", {"DELIVERYHUB_SMTP_CONNECT_TIMEOUT": "2.5"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2.5"


def test_a_setting_is_read_from_the_variable_named_after_it(tmp_path):
    result = run_setting("DELIVERY_SCHEDULE_LEASE_SECONDS", {"DELIVERYHUB_SCHEDULE_LEASE_SECONDS": "33"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "33"
    assert "deprecated" not in result.stderr


def test_an_old_documented_name_still_works_with_a_deprecation_warning(tmp_path):
    result = run_setting("DELIVERY_SCHEDULE_LEASE_SECONDS", {"DELIVERYHUB_SCHEDULE_LEASE": "44"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "44"
    assert "DELIVERYHUB_SCHEDULE_LEASE is deprecated: rename it DELIVERYHUB_SCHEDULE_LEASE_SECONDS" in result.stderr
    new_wins = run_setting(
        "DELIVERY_BATCH_SIZE", {"DELIVERYHUB_DELIVERY_BATCH_SIZE": "5", "DELIVERYHUB_BATCH_SIZE": "7"}, tmp_path
    )
    assert new_wins.stdout.strip() == "7" and "deprecated" not in new_wins.stderr
