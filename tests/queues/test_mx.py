"""MX resolution against a real DNS server on loopback: preference order, null MX, NXDOMAIN, implicit MX,
SERVFAIL and timeouts, caching for the TTL."""

import time

import pytest

from queues.delivery import mx
from queues.delivery.classifier import classify_result
from queues.delivery.mx import Destination, resolve_destination, resolve_host


@pytest.fixture
def world(dns_server, settings):
    settings.DNS_RESOLVERS = [dns_server.address]
    settings.DNS_TIMEOUT = 0.5
    settings.SMTP_PORT = 2525
    mx.clear_cache()
    dns_server.set_zone(
        "example.test",
        """
        @        300 IN MX 20 backup.example.test.
        @        300 IN MX 10 mx1.example.test.
        @        300 IN MX 10 mx2.example.test.
        mx1      300 IN A  192.0.2.1
        mx2      300 IN A  192.0.2.2
        mx2      300 IN AAAA 2001:db8::2
        backup   300 IN A  192.0.2.3
        """,
    )
    dns_server.set_zone("nullmx.test", "@ 300 IN MX 0 .")
    dns_server.set_zone("implicit.test", '@ 300 IN A 192.0.2.9\n@ 300 IN TXT "v=spf1 -all"')
    dns_server.set_zone("nothing.test", '@ 300 IN TXT "no mail here"')
    dns_server.set_zone("dangling.test", "@ 300 IN MX 10 gone.dangling.test.")
    dns_server.set_zone("short.test", "@ 1 IN MX 10 mx.short.test.\nmx 1 IN A 192.0.2.10")
    dns_server.servfail("broken.test")
    dns_server.timeout("slow.test")
    yield dns_server
    mx.clear_cache()


def test_preference_order_with_addresses(world):
    destination = resolve_destination("example.test")
    assert destination.error is None
    assert {host for host, _ in destination.hosts[:2]} == {"mx1.example.test", "mx2.example.test"}
    assert destination.hosts[2] == ("backup.example.test", 2525)
    assert all(port == 2525 for _, port in destination.hosts)
    assert destination.addresses["mx2.example.test"] == ["192.0.2.2", "2001:db8::2"]  # A before AAAA
    assert destination.addresses["backup.example.test"] == ["192.0.2.3"]


def test_equal_preferences_are_shuffled(world):
    firsts = {resolve_destination("example.test").hosts[0][0] for _ in range(60)}
    assert firsts == {"mx1.example.test", "mx2.example.test"}


def test_null_mx_bounces_without_connecting(world):
    destination = resolve_destination("nullmx.test")
    assert destination.hosts == []
    error = destination.error
    verdict = classify_result(error)
    assert (verdict.status, error.enhanced, verdict.category, verdict.action) == (
        "bounced",
        "5.1.10",
        "bad_domain",
        "bounce+suppress",
    )
    assert "null MX" in error.text


def test_nxdomain_bounces(world):
    error = resolve_destination("nope.example.test").error
    verdict = classify_result(error)
    assert (verdict.status, error.enhanced, verdict.category) == ("bounced", "5.1.2", "bad_domain")
    assert "NXDOMAIN" in error.text


def test_implicit_mx(world):
    destination = resolve_destination("implicit.test")
    assert destination.error is None
    assert destination.hosts == [("implicit.test", 2525)]
    assert destination.addresses == {"implicit.test": ["192.0.2.9"]}


def test_no_mx_and_no_address_bounces(world):
    error = resolve_destination("nothing.test").error
    verdict = classify_result(error)
    assert (verdict.status, error.enhanced) == ("bounced", "5.1.2")


def test_mx_host_without_address_bounces(world):
    error = resolve_destination("dangling.test").error
    verdict = classify_result(error)
    assert (verdict.status, error.enhanced, verdict.category) == ("bounced", "5.4.4", "routing")


def test_servfail_defers_and_is_not_cached(world):
    error = resolve_destination("broken.test").error
    verdict = classify_result(error)
    assert (verdict.status, error.enhanced, verdict.action) == ("deferred", "4.4.3", "defer")
    world.clear_faults("broken.test")
    world.set_zone("broken.test", "@ 300 IN MX 10 mx.broken.test.\nmx 300 IN A 192.0.2.20")
    assert resolve_destination("broken.test").hosts == [("mx.broken.test", 2525)]


def test_timeout_defers(world):
    started = time.monotonic()
    error = resolve_destination("slow.test").error
    verdict = classify_result(error)
    assert (verdict.status, error.enhanced) == ("deferred", "4.4.3")
    assert "timed out" in error.text
    assert time.monotonic() - started < 3


def test_cached_for_the_ttl(world):
    assert resolve_destination("short.test").addresses == {"mx.short.test": ["192.0.2.10"]}
    world.set_zone("short.test", "@ 1 IN MX 10 mx.short.test.\nmx 1 IN A 192.0.2.11")
    queries = len(world.queries)
    assert resolve_destination("short.test").addresses == {"mx.short.test": ["192.0.2.10"]}  # cached
    assert len(world.queries) == queries
    time.sleep(1.1)
    assert resolve_destination("short.test").addresses == {"mx.short.test": ["192.0.2.11"]}


def test_cache_is_bounded(world, settings):
    settings.MX_CACHE_MAX_ENTRIES = 2
    for domain in ("example.test", "implicit.test", "short.test"):
        resolve_destination(domain)
    assert len(mx._cache) == 2


def test_idn_domain(world):
    world.set_zone("xn--bcher-kva.test", "@ 300 IN MX 10 mx.xn--bcher-kva.test.\nmx 300 IN A 192.0.2.30")
    assert resolve_destination("b\u00fccher.test").hosts == [("mx.xn--bcher-kva.test", 2525)]


def test_relay_destination():
    destination = Destination.for_relay("smtp.relay.test", 587, username="u", password="p", tls_required=True)
    assert destination.hosts == [("smtp.relay.test", 587)]
    assert (destination.username, destination.password, destination.tls_required, destination.error) == (
        "u",
        "p",
        True,
        None,
    )


def test_resolve_host(world):
    assert resolve_host("mx2.example.test") == ["192.0.2.2", "2001:db8::2"]
    assert resolve_host("127.0.0.1") == ["127.0.0.1"]
    assert resolve_host("missing.example.test") == []
