"""
Base viewsets: declare `queryset`, `serializer_class` and `filterset_class`; the base class does the policing.

`TenantModelViewSet` restricts the queryset through `restrict()` (so another tenant's object is a 404),
creates objects in the request's tenant, wraps writes in a transaction and re-checks that a saved
object is still visible to the actor.
"""

from django.db import transaction
from rest_framework import mixins, relations, serializers, viewsets
from rest_framework.exceptions import NotFound, ValidationError

from ..choices import Action
from ..permissions import Principal
from .permissions import require_fresh_second_factor


class BaseViewSetMixin:
    """What every DeliveryHub viewset shares: the permission area and restrict()."""

    permission_area = None  # defaults to the model's
    permission_action = None  # an @action may set its own: @action(..., permission_action="export")
    sudo_actions = frozenset()  # actions a session may take only with a fresh second-factor code (keys are exempt)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.action in self.sudo_actions:
            require_fresh_second_factor(request)

    def get_permission_area(self):
        return self.permission_area or self.queryset.model.permission_area

    @property
    def principal(self):
        return Principal.of(self.request.user)

    def get_queryset(self):
        return super().get_queryset().restrict(self.principal, Action.VIEW)

    def get_serializer(self, *args, **kwargs):
        """Every writable related field accepts only objects the actor may see: another tenant's id is
        refused exactly like an id that does not exist, whatever serializer declares the field."""
        from ..filtersets import visible_choices

        serializer = super().get_serializer(*args, **kwargs)
        target = serializer.child if isinstance(serializer, serializers.ListSerializer) else serializer
        for field in getattr(target, "fields", {}).values():
            related = field.child_relation if isinstance(field, relations.ManyRelatedField) else field
            if isinstance(related, relations.RelatedField) and not related.read_only and related.queryset is not None:
                related.queryset = visible_choices(related.queryset.all(), self.principal)
        return serializer

    def request_tenant(self):
        """The tenant new objects belong to: the key's tenant, or the session's current tenant."""
        tenant = getattr(self.request, "tenant", None)
        if tenant is None:
            raise ValidationError({"tenant": "No current tenant: use a tenant API key or select a tenant."})
        return tenant


class TenantModelViewSet(BaseViewSetMixin, viewsets.ModelViewSet):
    """CRUD for a TenantModel, policed by tenant and role."""

    def perform_create(self, serializer):
        with transaction.atomic():
            instance = serializer.save(tenant=self.request_tenant())
            self._recheck(instance)

    def perform_update(self, serializer):
        with transaction.atomic():
            instance = serializer.save()
            self._recheck(instance)

    def perform_destroy(self, instance):
        with transaction.atomic():
            instance.delete()

    def _recheck(self, instance):
        if not self.get_queryset().filter(pk=instance.pk).exists():
            raise NotFound("The object would not be visible to you after this change.")


class ReadOnlyTenantViewSet(BaseViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Read-only access to tenant-owned rows (audit log, jobs)."""


class CreateListRetrieveDestroyViewSet(
    BaseViewSetMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Objects that are created and removed but never edited (API keys)."""
