"""`manage.py ensure_local_node`: the demo/dev sending setup (node "local", IP 127.0.0.1, shared pool "default")."""

from django.core.management.base import BaseCommand

from deliveryhub.audit import audit_context
from ippools import services


class Command(BaseCommand):
    help = (
        'Create (if missing) delivery node "local" with IP 127.0.0.1 in the shared transactional pool "default" '
        "that every tenant may use, and record a heartbeat. Idempotent; `make run` calls it."
    )

    def handle(self, *args, **options):
        with audit_context(principal=None):
            node, ip, pool = services.ensure_local_node()
        self.stdout.write(f"Node {node.name}: IP {ip.address} in pool {pool.name} (shared, all tenants).")
