"""DELIVERYHUB_DNS_RESOLVERS (`host[:port]`, comma-separated) and DELIVERYHUB_DNS_TIMEOUT reach the resolver that
verification uses: a fresh process configured only through the environment answers from the loopback DNS server."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, django
django.setup()
from deliveryhub import dns
resolver = dns.make_resolver()
found = dns.query("_dmarc.example.test", "TXT")
print(json.dumps({
    "nameservers": [[ns.address, ns.port] for ns in resolver.nameservers],
    "timeout": resolver.lifetime,
    "status": found.status,
    "records": found.records,
}))
"""


def probe(tmp_path, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERYHUB_")}
    env.update({"DELIVERYHUB_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "deliveryhub.settings"})
    env.update(env_overrides)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_resolvers_and_timeout_come_from_the_environment(dns_server, tmp_path):
    dns_server.set_zone("example.test", '_dmarc IN TXT "v=DMARC1; p=reject"')
    answer = probe(
        tmp_path,
        DELIVERYHUB_DNS_RESOLVERS=f"{dns_server.address}, [::1]:5399",
        DELIVERYHUB_DNS_TIMEOUT="2.5",
    )
    assert answer["nameservers"] == [["127.0.0.1", dns_server.port], ["::1", 5399]]
    assert answer["timeout"] == 2.5
    assert (answer["status"], answer["records"]) == ("answer", ['"v=DMARC1; p=reject"'])


def test_a_resolver_without_a_port_uses_53(dns_server, tmp_path):
    answer = probe(tmp_path, DELIVERYHUB_DNS_RESOLVERS="192.0.2.53", DELIVERYHUB_DNS_TIMEOUT="0.2")
    assert answer["nameservers"] == [["192.0.2.53", 53]]
    assert answer["status"] == "error"  # nobody answers there: an error, never "missing"
