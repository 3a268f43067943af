"""Test-run defaults: real Redis on 127.0.0.1:6379 (db 15) unless REDIS_URL says otherwise."""

import os

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DELIVERYHUB_VAR_DIR", os.path.join(os.path.dirname(__file__), "var", "test"))

pytest_plugins = ["deliveryhub.testing.fixtures"] if os.path.exists(
    os.path.join(os.path.dirname(__file__), "deliveryhub", "testing", "fixtures.py")
) else []
