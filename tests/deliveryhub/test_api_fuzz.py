"""A bounded schemathesis run over /api/schema/: a few generated requests per operation, as a tenant admin key, and not
one may answer 5xx. Kept small (FUZZ_EXAMPLES per operation, derandomized) so that it runs in every CI run; a
wider run is `DELIVERYHUB_FUZZ_EXAMPLES=100 make test PYTEST_ARGS="tests/deliveryhub/test_api_fuzz.py"`."""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase
from hypothesis import settings as fuzz_settings

from deliveryhub import services
from deliveryhub.choices import Role
from deliveryhub.testing.dns import DNSServer

FUZZ_EXAMPLES = int(os.environ.get("DELIVERYHUB_FUZZ_EXAMPLES", "3"))  # generated requests per operation

# Fuzzing only (valid and invalid requests): schemathesis's examples and coverage phases add dozens of requests per
# operation whatever max_examples says.
CONFIG = schemathesis.Config.from_dict(
    {"phases": {"examples": {"enabled": False}, "coverage": {"enabled": False}, "fuzzing": {"enabled": True}}}
)
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)


@pytest.fixture(scope="module")
def refusing_dns():
    """A loopback DNS server serving no zone: every question is refused at once (routes and domains resolve names
    when saved), so nothing leaves the machine and nothing waits for a timeout."""
    with DNSServer() as dns:
        yield dns


@pytest.fixture
def admin_key(db, settings, refusing_dns):
    """The raw key of a tenant admin; the WSGI handler kept from closing the test's database connection."""
    settings.DNS_RESOLVERS = [refusing_dns.address]
    settings.DNS_TIMEOUT = 0.5
    tenant = services.create_tenant("fuzz", "Fuzz")
    _, raw = services.create_api_key(tenant=tenant, name="fuzz", role=Role.ADMIN)
    # Django's handler closes the connection after each request, which would end the test's transaction; Django's
    # test client keeps it open the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield raw
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@fuzz_settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,  # the same requests every run: CI stays deterministic
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported with the request that caused it
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx(case, admin_key):
    response = case.call(headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
