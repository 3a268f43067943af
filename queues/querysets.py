"""Querysets of the queues app: the scheduler's ready scan and tenancy through the message."""

from django.db import connections
from django.db.models import Q
from django.utils import timezone

from deliveryhub.crypto import pseudonym_address
from deliveryhub.querysets import RestrictedQuerySet, TenantQuerySet

from .choices import READY_STATUSES, MessageStatus


class MessageQuerySet(TenantQuerySet):
    """Messages, with the scheduler's questions."""

    def ready(self, now=None):
        """Due for a try: queued or deferred, next attempt come, no live lease (scheduled or claimed)."""
        now = now or timezone.now()
        return self.filter(status__in=READY_STATUSES, next_attempt_at__lte=now).filter(
            Q(lease_expires__isnull=True) | Q(lease_expires__lt=now)
        )

    def stale_leases(self, now=None):
        """Claimed by a worker whose lease ran out (the worker died or hung)."""
        now = now or timezone.now()
        return self.filter(status=MessageStatus.SENDING, lease_expires__lt=now)


class MessageChildQuerySet(RestrictedQuerySet):
    """Rows that belong to a tenant through their message (attempts, events)."""

    def tenant_lookup(self):
        return "message__tenant_id"


class SuppressionQuerySet(TenantQuerySet):
    """Suppressions, with the one question intake and delivery ask: which of these addresses may not be mailed."""

    def suppressed_among(self, tenant_id, addresses):
        """The addresses (lower case) of `addresses` on the tenant's list, in clear or as an erased pseudonym."""
        wanted = {address.lower(): address.lower() for address in addresses}
        wanted.update({pseudonym_address(address): address for address in list(wanted)})
        # Asked on every intake request: one plain statement (compiling the ORM's took ten times as long as running it).
        quote = connections[self.db].ops.quote_name
        sql = (f"SELECT {quote('address')} FROM {quote(self.model._meta.db_table)} WHERE {quote('tenant_id')} = %s "
               f"AND {quote('address')} IN ({', '.join(['%s'] * len(wanted))})")  # fmt: skip
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, [tenant_id, *wanted])
            return {wanted[address] for (address,) in cursor.fetchall()}
