"""Test helpers of the queues app: a sending domain that may send (with a DKIM key), a node with source IPs."""

import functools

from django.conf import settings

DKIM_TEST_SELECTOR = "dh1"
DKIM_TEST_BITS = 2048


@functools.lru_cache(maxsize=1)
def _test_key():
    """One RSA key pair per test process (generating 2048-bit keys is slow)."""
    from domains.keys import generate

    return generate("rsa-sha256", DKIM_TEST_BITS)


def make_sending_domain(tenant, name, *, dkim=True, return_path="bounces"):
    """A sending domain of `tenant` that may send now (DKIM verified) with an active DKIM key when `dkim`."""
    from django.utils import timezone

    from domains.choices import DkimKeyState, DomainStatus
    from domains.models import DkimKey, SendingDomain

    domain = SendingDomain(tenant=tenant, name=name, return_path_subdomain=return_path)
    domain.full_clean()
    domain.save()
    SendingDomain.objects.filter(pk=domain.pk).update(
        status=DomainStatus.VERIFIED, dkim_verified=True, ever_verified=True, ownership_verified=timezone.now()
    )
    domain.refresh_from_db()
    if dkim:
        pem, public = _test_key()
        DkimKey.objects.create(
            tenant=tenant, domain=domain, selector=DKIM_TEST_SELECTOR, algorithm="rsa-sha256", key_bits=DKIM_TEST_BITS,
            public_key=public, private_key=pem, state=DkimKeyState.ACTIVE, activated_at=timezone.now(),
        )  # fmt: skip
    return domain


def dkim_zone(domain):
    """Zone-file lines publishing the domain's DKIM keys (for the loopback DNS server)."""
    from deliveryhub.testing.dns import txt_strings

    return "\n".join(
        f"{key.selector}._domainkey 300 IN TXT {txt_strings(key.dns_txt_value())}" for key in domain.dkim_keys.all()
    )


def make_sending_ips(addresses=("127.0.0.2",), *, node_name=None, pool_name="test-pool"):
    """A live node (this process's NODE_NAME by default) owning `addresses`, in a shared pool open to all tenants."""
    from ippools.testing import make_ip, make_node, make_pool

    node = make_node(node_name or settings.NODE_NAME)
    ips = [make_ip(address, node, ehlo=f"mta-{address.replace('.', '-')}.example.test") for address in addresses]
    pool = make_pool(pool_name, all_tenants=True, members=[(ip, 100) for ip in ips])
    return node, ips, pool
