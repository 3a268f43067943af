"""Test-run defaults: real Redis on 127.0.0.1:6379 (db 15) unless REDIS_URL says otherwise; shared fixtures."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DELIVERYHUB_VAR_DIR", str(ROOT / "var" / "test"))

from deliveryhub.testing.fixtures import *  # noqa: E402,F403  (dns_server, smtp_sink, smtp_sink_factory)
