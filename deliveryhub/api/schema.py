"""The OpenAPI description (drf-spectacular): operations tagged by area with a summary each, the error format
described once. Served at /api/schema/, browsable at /api/docs/."""

import re

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

from .schema_tags import TAGS

SUMMARY_MAX_CHARS = 80
VERBS = {
    "list": "List",
    "retrieve": "Get",
    "create": "Create",
    "update": "Replace",
    "partial_update": "Change",
    "destroy": "Delete",
}


class AutoSchema(SpectacularAutoSchema):
    """Tags from the URL's collection, summaries from the action ("List IP pools", "Verify domain")."""

    def collection(self):
        parts = [part for part in self.path.split("/") if part]
        return parts[2] if len(parts) > 2 and parts[0] == "api" else parts[-1] if parts else ""

    def get_tags(self):
        collection = self.collection()
        return [TAGS.get(collection, collection.replace("-", " ").capitalize())]

    def get_summary(self):
        action = getattr(self.view, "action", None)
        model = getattr(getattr(self.view, "queryset", None), "model", None)
        if model is None:
            return super().get_summary()
        name = model._meta.verbose_name_plural if action == "list" else model._meta.verbose_name
        if action in VERBS:
            return f"{VERBS[action]} {name}" if action == "list" else f"{VERBS[action]} a {name}"
        doc = (getattr(getattr(self.view, action, None), "__doc__", None) or "").strip()
        first = re.split(r"[.;:](?:\s|$)", doc, maxsplit=1)[0] if doc else action.replace("_", " ").capitalize()
        return first[:SUMMARY_MAX_CHARS]
