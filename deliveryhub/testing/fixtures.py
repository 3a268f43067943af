"""pytest fixtures for the real test peers in :mod:`deliveryhub.testing.dns` and :mod:`deliveryhub.testing.smtp`.

Register them once in the root ``conftest.py`` with ``pytest_plugins = ["deliveryhub.testing.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from deliveryhub.testing.dns import DNSServer
from deliveryhub.testing.smtp import SMTPSink


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    """Yield a started authoritative :class:`DNSServer` on 127.0.0.1 (free port), stopped after the test."""
    with DNSServer() as server:
        yield server


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    """Yield a started plain :class:`SMTPSink` on 127.0.0.1 (free port), stopped after the test."""
    with SMTPSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink_factory() -> Iterator[Callable[..., SMTPSink]]:
    """Start :class:`SMTPSink` servers with any arguments (``smtp_sink_factory(tls_cert="self-signed")``).

    Every sink started through the factory is stopped after the test.
    """
    sinks: list[SMTPSink] = []

    def start(**kwargs) -> SMTPSink:
        sink = SMTPSink(**kwargs).start()
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.stop()
