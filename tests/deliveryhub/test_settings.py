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
        {"DEBUG": "false", "DELIVERYHUB_SECRET_KEY": "abcd-prod-secret", "DELIVERYHUB_DATA_KEY_FILE": str(secret_file)},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "abcd"


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
