"""Querysets of the reports app."""

from django.db.models import Q

from deliveryhub.querysets import RestrictedQuerySet


class PurgeRunQuerySet(RestrictedQuerySet):
    """Purge runs: a tenant sees the runs that were limited to it or that deleted (or counted) rows of it."""

    def restrict(self, actor, action="view"):
        from deliveryhub.permissions import Principal

        principal = Principal.of(actor)
        if principal.is_platform:
            return self
        tenant_ids = principal.tenant_ids_allowing(self.model.permission_area, action)
        return self.filter(Q(tenant_id__in=tenant_ids) | Q(items__tenant_id__in=tenant_ids)).distinct()
