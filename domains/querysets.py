"""Querysets of the domains app (all built on the tenant choke point `restrict()`)."""

from deliveryhub.querysets import TenantQuerySet

from .choices import PUBLISHED_KEY_STATES, DkimKeyState


class SendingDomainQuerySet(TenantQuerySet):
    def due_for_check(self, before):
        """Domains never checked, or last checked before `before`, oldest first."""
        from django.db.models import F, Q

        return self.filter(Q(last_checked__isnull=True) | Q(last_checked__lt=before)).order_by(
            F("last_checked").asc(nulls_first=True)
        )


class DkimKeyQuerySet(TenantQuerySet):
    def published(self):
        """Keys whose record belongs in DNS: pending, active and retiring."""
        return self.filter(state__in=PUBLISHED_KEY_STATES)

    def signing(self):
        """Keys that sign now (at most one active key per algorithm)."""
        return self.filter(state=DkimKeyState.ACTIVE)


class DnsCheckQuerySet(TenantQuerySet):
    pass
