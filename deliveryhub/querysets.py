"""Querysets of the core, above all the one permission choke point: `restrict(actor, action)`."""

import functools

from django.core.exceptions import ValidationError
from django.db import connections, models


def rows_where(model, **values):
    """The rows of `model` whose fields equal `values` (`prefix=…`, `tenant_id=…, name=…`), as model instances.

    For the few lookups every API request makes (its key and tenant, its sending domain): the ORM compiles a
    statement afresh for each query, which cost more than running it; this one is written once per model and fields
    and run with `raw()` (the fields' own conversions apply). No ordering, no joins, no manager filters: callers ask
    by a unique or indexed column.
    """
    return model._default_manager.raw(_where_sql(model, tuple(values), "default"), list(values.values()))


@functools.cache
def _where_sql(model, names, alias):
    quote = connections[alias].ops.quote_name
    conditions = " AND ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in names)
    return f"SELECT * FROM {quote(model._meta.db_table)} WHERE {conditions}"


class RestrictedQuerySet(models.QuerySet):
    """A queryset that can be narrowed to what an actor may see or do.

    `restrict(actor, action)` is the single place where tenancy and roles meet the database: every
    UI view, viewset, export and admin changelist reaches objects through it. The superuser (and
    platform key) bypass is explicit here and nowhere else.
    """

    def restrict(self, actor, action="view"):
        from .permissions import Principal

        principal = Principal.of(actor)
        if principal.is_platform:
            return self
        tenant_ids = principal.tenant_ids_allowing(self.model.permission_area, action)
        return self.filter(**{f"{self.tenant_lookup()}__in": tenant_ids})

    def for_request(self, request, action="view", *, every_tenant=False):
        """What the request's principal may `action`, in the request's current tenant: the UI's one way to objects.

        `restrict()` decides tenancy and roles; the UI then shows one tenant at a time (the tenant switcher's), so
        rows owned by a tenant are narrowed to the current one (none without a current tenant). Models without a
        tenant (platform objects) are what `restrict()` gives. `every_tenant`: a platform principal's page over every
        tenant's rows (platform rules beside each tenant's); anyone else still sees the current tenant's.
        """
        queryset = self.restrict(request.principal, action)
        lookup = self.tenant_lookup()
        if lookup is None or (every_tenant and request.principal.is_platform):
            return queryset
        tenant = request.tenant
        return queryset.filter(**{lookup: tenant.pk}) if tenant is not None else queryset.none()

    def for_tenant(self, tenant):
        """Objects of exactly this tenant (the UI's current tenant)."""
        return self.filter(**{self.tenant_lookup(): tenant.pk if hasattr(tenant, "pk") else tenant})

    def tenant_lookup(self):
        """The lookup naming a row's tenant (None: the model has no tenant)."""
        from .models import Tenant

        return "pk" if self.model is Tenant else "tenant_id"


class TenantQuerySet(RestrictedQuerySet):
    """Queryset of a `TenantModel`."""


class AuditEntryQuerySet(RestrictedQuerySet):
    """Audit entries are append-only: bulk update and delete are refused."""

    def update(self, **kwargs):
        raise ValidationError("Audit entries are append-only.")

    def delete(self):
        raise ValidationError("Audit entries are append-only.")

    _raw_delete = delete
