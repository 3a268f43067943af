"""The API's filter backend: django-filter, with every model-choice filter restricted to the actor's objects."""

from django_filters.rest_framework import DjangoFilterBackend

from ..filtersets import restrict_choices


class RestrictedFilterBackend(DjangoFilterBackend):
    """`DjangoFilterBackend` whose filtersets (declared or built from `filterset_fields`) offer and accept only
    objects the request's actor may see: a foreign id in a filter is an invalid choice, like a missing one."""

    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is not None:
            restrict_choices(filterset, request.user)
        return filterset
