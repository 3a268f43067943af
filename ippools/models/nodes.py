"""Delivery nodes: the hosts that run delivery workers and own source IPs."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from deliveryhub.choices import Area
from deliveryhub.models import ChangeLoggedModel, PanelURLs

from ..choices import NodeStatus
from ..querysets import DeliveryNodeQuerySet


class DeliveryNode(PanelURLs, ChangeLoggedModel):
    """A host running delivery workers (`DELIVERYHUB_NODE=<name>`); its workers send only from its IPs.

    `last_heartbeat` is written by the workers (not audited); the node is live while it is recent.
    """

    name = models.SlugField(max_length=63, unique=True)
    region = models.CharField(max_length=63, blank=True)
    hostname = models.CharField(max_length=253, blank=True)
    status = models.CharField(max_length=12, choices=NodeStatus.choices, default=NodeStatus.ACTIVE)
    last_heartbeat = models.DateTimeField(null=True, blank=True, editable=False)

    permission_area = Area.PLATFORM
    panel_url_name = "node"
    audit_exclude = ChangeLoggedModel.audit_exclude | {"last_heartbeat"}

    objects = DeliveryNodeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def is_live(self, now=None):
        """Active and heard from within NODE_HEARTBEAT_TIMEOUT seconds."""
        if self.status != NodeStatus.ACTIVE or self.last_heartbeat is None:
            return False
        now = now or timezone.now()
        return self.last_heartbeat >= now - timedelta(seconds=settings.NODE_HEARTBEAT_TIMEOUT)
