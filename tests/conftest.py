"""Shared fixtures. The test environment (Redis database, var/ directory, one of each per xdist worker) is set by
`deliveryhub.testing.pytest_env`, loaded from pytest.ini before Django reads its settings."""

from deliveryhub.testing.fixtures import *  # noqa: F403  (dns_server, smtp_sink, smtp_sink_factory)
