"""`manage.py move_node_ips LOST_NODE TARGET_NODE`: after a node is lost, give its IP addresses to another node.

Move the addresses on the hosts first (floating IP, keepalived, the cloud's API), then run this: batches for those
IPs go to TARGET_NODE's workers from the next scheduler run; the lost node's claimed messages come back when their
leases run out (docs/operations.md, "A delivery node is lost").
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from deliveryhub import audit
from ippools import services
from ippools.models import DeliveryNode


class Command(BaseCommand):
    help = "Move every IP address of one delivery node to another (a lost node's addresses, in one action)."

    def add_arguments(self, parser):
        parser.add_argument("source", help="The node the addresses are on now (the lost one).")
        parser.add_argument("target", help="The node that takes them over.")

    def handle(self, *args, source, target, **options):
        nodes = {node.name: node for node in DeliveryNode.objects.filter(name__in=[source, target])}
        for name in (source, target):
            if name not in nodes:
                raise CommandError(f"No delivery node {name!r}.")
        try:
            with audit.audit_context(principal=None):
                moved = services.move_node_ips(nodes[source], nodes[target])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        addresses = ", ".join(ip.address for ip in moved) or "none"
        self.stdout.write(self.style.SUCCESS(f"Moved {len(moved)} address(es) from {source} to {target}: {addresses}"))
