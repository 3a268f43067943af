"""What the queues app does when another app's state changes (connected in QueuesConfig.ready)."""

from django.dispatch import receiver

from ippools.signals import capacity_changed

from . import services


@receiver(capacity_changed, dispatch_uid="queues.release_capacity_waits")
def release_capacity_waits(sender, reason="", **kwargs):
    """Sending capacity grew (a warm-up stopped or re-planned, an IP resumed…): mail held for it goes again now."""
    services.release_capacity_waits()
