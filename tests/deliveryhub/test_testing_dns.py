"""The test DNS server answers real resolvers like an authoritative server would."""

import socket

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
import pytest

from deliveryhub.testing.dns import DNSServer, Query, txt_strings

ZONE = """
    @     300 IN MX    10 mx1.example.test.
    @     300 IN MX    20 mx2.example.test.
    @     300 IN TXT   "v=spf1 ip4:127.0.0.2 ~all"
    mx1   300 IN A     127.0.0.1
    mx1   300 IN AAAA  ::1
    mx2       IN A     127.0.0.3
    www       IN CNAME mx1
    a.deep    IN A     127.0.0.4
    *.wild    IN A     127.0.0.5
"""


def resolver_for(server: DNSServer, timeout: float = 0.5) -> dns.resolver.Resolver:
    """Return a resolver that asks only ``server``."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.timeout = resolver.lifetime = timeout
    return resolver


def ask(server: DNSServer, name: str, rdtype: str, tcp: bool = False) -> dns.message.Message:
    """Send one raw query and return the raw response (to check flags and sections)."""
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server.host, port=server.port, timeout=0.5)


def test_address_and_port(dns_server):
    assert dns_server.port > 0
    assert dns_server.address == f"127.0.0.1:{dns_server.port}"


def test_mx_txt_a_aaaa_answers(dns_server):
    dns_server.set_zone("example.test", ZONE)
    resolver = resolver_for(dns_server)

    mx = sorted((r.preference, r.exchange.to_text()) for r in resolver.resolve("example.test", "MX"))
    assert mx == [(10, "mx1.example.test."), (20, "mx2.example.test.")]
    assert [r.strings for r in resolver.resolve("example.test", "TXT")] == [(b"v=spf1 ip4:127.0.0.2 ~all",)]
    assert [r.address for r in resolver.resolve("mx1.example.test", "A")] == ["127.0.0.1"]
    assert [r.address for r in resolver.resolve("mx1.example.test", "AAAA")] == ["::1"]
    answer = resolver.resolve("mx2.example.test", "A")
    assert answer.rrset.ttl == 300  # default TTL for records written without one
    assert ("example.test", "MX", "udp") in dns_server.queries
    assert dns_server.queries[-1] == Query("mx2.example.test", "A", "udp")


def test_answers_are_authoritative(dns_server):
    dns_server.set_zone("example.test", ZONE)
    response = ask(dns_server, "mx1.example.test", "A")
    assert response.flags & dns.flags.AA
    assert response.rcode() == dns.rcode.NOERROR


def test_nxdomain_inside_zone_with_soa(dns_server):
    dns_server.set_zone("example.test", ZONE)
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver_for(dns_server).resolve("missing.example.test", "A")
    response = ask(dns_server, "missing.example.test", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_nodata_for_existing_name_without_type(dns_server):
    dns_server.set_zone("example.test", ZONE)
    with pytest.raises(dns.resolver.NoAnswer):
        resolver_for(dns_server).resolve("mx2.example.test", "TXT")
    response = ask(dns_server, "mx2.example.test", "TXT")
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.answer
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_empty_non_terminal_is_nodata_not_nxdomain(dns_server):
    dns_server.set_zone("example.test", ZONE)
    response = ask(dns_server, "deep.example.test", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.answer


def test_refused_outside_every_zone(dns_server):
    dns_server.set_zone("example.test", ZONE)
    assert ask(dns_server, "other.test", "A").rcode() == dns.rcode.REFUSED
    with pytest.raises(dns.resolver.NoNameservers):
        resolver_for(dns_server).resolve("other.test", "A")


def test_cname_and_wildcard(dns_server):
    dns_server.set_zone("example.test", ZONE)
    answer = resolver_for(dns_server).resolve("www.example.test", "A")
    assert answer.canonical_name.to_text() == "mx1.example.test."
    assert [r.address for r in answer] == ["127.0.0.1"]
    assert [r.address for r in resolver_for(dns_server).resolve("anything.wild.example.test", "A")] == ["127.0.0.5"]


def test_ptr_zone_and_ipv6_nibble_zone(dns_server):
    dns_server.set_zone("2.0.0.127.in-addr.arpa", "@ IN PTR mx1.example.test.")
    dns_server.set_ptr("2001:db8::25", "mx6.example.test")
    resolver = resolver_for(dns_server)
    assert [r.target.to_text() for r in resolver.resolve_address("127.0.0.2")] == ["mx1.example.test."]
    assert [r.target.to_text() for r in resolver.resolve_address("2001:db8::25")] == ["mx6.example.test."]
    reverse = dns.reversename.from_address("2001:db8::25").to_text(omit_final_dot=True)
    assert Query(reverse, "PTR", "udp") in dns_server.queries


def test_long_txt_split_into_strings_round_trips(dns_server):
    key = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 10  # 458 characters
    dns_server.set_zone("example.test", f"sel._domainkey IN TXT {txt_strings(key)}")
    [record] = resolver_for(dns_server).resolve("sel._domainkey.example.test", "TXT")
    assert [len(s) for s in record.strings] == [255, len(key) - 255]
    assert b"".join(record.strings).decode() == key


def test_explicit_multi_string_txt_round_trips_exactly(dns_server):
    dns_server.set_zone("example.test", '@ IN TXT "first part " "second \\"quoted\\" part" ""')
    [record] = resolver_for(dns_server).resolve("example.test", "TXT")
    assert record.strings == (b"first part ", b'second "quoted" part', b"")


def test_big_answer_truncated_on_udp_then_full_over_tcp(dns_server):
    records = "\n".join(f'big IN TXT "record {i:02d} {"x" * 90}"' for i in range(30))
    dns_server.set_zone("example.test", records)

    udp = ask(dns_server, "big.example.test", "TXT")
    assert udp.flags & dns.flags.TC
    assert not udp.answer
    assert len(ask(dns_server, "big.example.test", "TXT", tcp=True).answer[0]) == 30

    dns_server.queries.clear()
    answer = resolver_for(dns_server).resolve("big.example.test", "TXT")
    assert len(answer) == 30
    assert [q.transport for q in dns_server.queries] == ["udp", "tcp"]


def test_edns_buffer_size_is_honoured_on_udp(dns_server):
    records = "\n".join(f'big IN TXT "record {i:02d} {"x" * 90}"' for i in range(10))  # ~1.1 kB
    dns_server.set_zone("example.test", records)
    query = dns.message.make_query("big.example.test", "TXT", use_edns=0, payload=1232)
    response = dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=0.5)
    assert not response.flags & dns.flags.TC
    assert len(response.answer[0]) == 10


def test_servfail(dns_server):
    dns_server.set_zone("broken.test", "@ IN A 127.0.0.1")
    dns_server.servfail("broken.test")
    with pytest.raises(dns.resolver.NoNameservers):
        resolver_for(dns_server).resolve("mx.broken.test", "A")
    assert ask(dns_server, "broken.test", "A").rcode() == dns.rcode.SERVFAIL

    dns_server.clear_faults("broken.test")
    assert [r.address for r in resolver_for(dns_server).resolve("broken.test", "A")] == ["127.0.0.1"]


def test_timeout_drops_queries_on_udp_and_tcp(dns_server):
    dns_server.set_zone("slow.test", "@ IN A 127.0.0.1")
    dns_server.timeout("slow.test")
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver_for(dns_server, timeout=0.3).resolve("slow.test", "A")
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver_for(dns_server, timeout=0.3).resolve("slow.test", "A", tcp=True)
    assert Query("slow.test", "A", "tcp") in dns_server.queries


def test_zone_replace_and_remove(dns_server):
    resolver = resolver_for(dns_server)
    dns_server.set_zone("example.test", "@ IN A 127.0.0.1")
    dns_server.set_zone("example.test", "@ IN A 127.0.0.9")
    assert [r.address for r in resolver.resolve("example.test", "A")] == ["127.0.0.9"]
    dns_server.remove_zone("example.test")
    assert ask(dns_server, "example.test", "A").rcode() == dns.rcode.REFUSED


def test_most_specific_zone_wins(dns_server):
    dns_server.set_zone("test", "example IN A 127.0.0.1")
    dns_server.set_zone("sub.example.test", "@ IN A 127.0.0.2")
    resolver = resolver_for(dns_server)
    assert [r.address for r in resolver.resolve("example.test", "A")] == ["127.0.0.1"]
    assert [r.address for r in resolver.resolve("sub.example.test", "A")] == ["127.0.0.2"]


def test_tcp_connection_serves_several_queries(dns_server):
    dns_server.set_zone("example.test", ZONE)
    with socket.create_connection((dns_server.host, dns_server.port), timeout=0.5) as sock:
        for name in ("mx1.example.test", "mx2.example.test"):
            dns.query.send_tcp(sock, dns.message.make_query(name, "A"))
            response, _ = dns.query.receive_tcp(sock, expiration=None)
            assert response.answer


def test_context_manager_and_restart():
    server = DNSServer()
    with server:
        port = server.port
        server.set_zone("example.test", "@ IN A 127.0.0.1")
        assert [r.address for r in resolver_for(server).resolve("example.test", "A")] == ["127.0.0.1"]
    assert not server.running
    server.stop()  # idempotent
    with server:
        assert server.port  # a fresh free port; zones are kept
        assert [r.address for r in resolver_for(server).resolve("example.test", "A")] == ["127.0.0.1"]
    assert port
