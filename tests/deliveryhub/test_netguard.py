"""The outbound address policy (deliveryhub.netguard): public addresses only, unless an operator allows private ones;
never the platform's own ports on this host."""

import pytest
from django.test import override_settings

from deliveryhub import netguard
from deliveryhub.netguard import TargetNotAllowed, check_address, check_public_host, is_public_address

NOT_PUBLIC = [
    "127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254",
    "100.100.100.200", "fd00:ec2::254", "fe80::1", "224.0.0.1", "ff02::1", "255.255.255.255", "192.0.2.1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "2002:7f00:1::", "64:ff9b::a00:5", "fec0::1",
    "2001:0:4136:e378:8000:63bf:80ff:fefe",  # Teredo whose client is 127.0.1.1
]  # fmt: skip
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_not_public(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address):
    assert is_public_address(address)


@override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=False)
def test_private_targets_refused_by_default_with_a_reason():
    with pytest.raises(TargetNotAllowed, match=r"169\.254\.169\.254 is a link-local address .*metadata"):
        check_address("169.254.169.254", 80)
    with pytest.raises(TargetNotAllowed, match=r"127\.0\.0\.1 is a loopback address: only public addresses"):
        check_address("127.0.0.1", 5432)
    with pytest.raises(TargetNotAllowed, match="unspecified"):
        check_public_host("0.0.0.0", 25)
    with pytest.raises(TargetNotAllowed, match="loopback"):
        check_public_host("[::1]", 25)
    with pytest.raises(TargetNotAllowed, match="localhost resolves to 127.0.0.1, a loopback address"):
        check_public_host("localhost", 25)
    assert check_public_host("93.184.215.14", 25) == [netguard._as_address("93.184.215.14")]


@override_settings(OUTBOUND_ALLOW_PRIVATE_TARGETS=True, SMTPD_PORT=2587, SMTPD_INBOUND_PORT=2525, WEB_PORT=8000,
                   SITE_URL="http://127.0.0.1:8001", REDIS_URL="redis://127.0.0.1:6390/1",
                   DATABASE_URL="postgres://u@127.0.0.1/x")  # fmt: skip
def test_allowed_private_targets_never_reach_the_platforms_own_ports():
    check_address("127.0.0.1", 2526)  # e.g. the demo's capture server
    check_address("10.0.0.5", 2587)  # another host's port 2587 is not ours
    for port in (2587, 2525, 8000, 8001, 6390, 5432):
        with pytest.raises(TargetNotAllowed, match=f"port {port} is one of the platform's own services"):
            check_address("127.0.0.1", port)
    with pytest.raises(TargetNotAllowed, match="platform's own"):
        check_address("::ffff:127.0.0.2", 2587)
    with pytest.raises(TargetNotAllowed, match="platform's own"):
        check_public_host("0.0.0.0", 8000)


def test_names_are_resolved_and_every_address_must_pass(dns_server, settings):
    settings.DNS_RESOLVERS = [dns_server.address]
    settings.DNS_TIMEOUT = 1.0
    settings.OUTBOUND_ALLOW_PRIVATE_TARGETS = False
    dns_server.set_zone(
        "example.test",
        """
        relay      IN A    93.184.215.14
        relay      IN AAAA 2606:4700::1111
        sneaky     IN A    93.184.215.14
        sneaky     IN A    10.1.2.3
        metadata   IN A    169.254.169.254
        v6local    IN AAAA ::1
        """,
    )
    assert len(check_public_host("relay.example.test", 25)) == 2
    with pytest.raises(TargetNotAllowed, match=r"sneaky\.example\.test resolves to 10\.1\.2\.3, a private address"):
        check_public_host("sneaky.example.test", 25)
    with pytest.raises(TargetNotAllowed, match="link-local"):
        check_public_host("metadata.example.test.", 80)
    with pytest.raises(TargetNotAllowed, match="loopback"):
        check_public_host("v6local.example.test", 25)
    with pytest.raises(TargetNotAllowed, match=r"nothing\.example\.test has no address \(A or AAAA record\)\.$"):
        check_public_host("nothing.example.test", 25)
    dns_server.servfail("broken.test")
    with pytest.raises(TargetNotAllowed, match="lookup failed: .*try again later"):
        check_public_host("mx.broken.test", 25)
