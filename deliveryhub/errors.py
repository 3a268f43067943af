"""The shape of every JSON error ({"error": {"code", "message", "fields"}}) and the answer to a request that found
the database unreachable: a 503 with Retry-After (JSON under /api/, a short page elsewhere), never a 500. Used by
the API's exception handler, `DatabaseUnavailableMiddleware` and handler500 (no DRF here: middleware imports it)."""

import logging

from django.db import InterfaceError, OperationalError, connection
from django.http import HttpResponse, JsonResponse

from .constants import DATABASE_RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)

API_PATH_PREFIX = "/api/"
DATABASE_UNAVAILABLE_MESSAGE = "The database is unreachable for the moment: nothing was changed; try again shortly."


def error_body(code, message, fields=None):
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def database_unreachable(exc):
    """Whether `exc` says the database cannot be reached now (rather than a query being wrong)."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if connection.vendor == "sqlite":  # the file cannot be opened, or another writer holds it
        text = str(exc).lower()
        return any(words in text for words in ("unable to open", "locked", "disk i/o", "readonly database"))
    if connection.connection is None:  # could not connect at all
        return True
    try:
        return not connection.is_usable()
    except Exception:
        return True


def database_unavailable(request):
    """The 503 of a request that found the database unreachable: JSON under /api/, a short page elsewhere."""
    logger.warning("Database unreachable while serving %s", getattr(request, "path", "?"), exc_info=True)
    retry = str(DATABASE_RETRY_AFTER_SECONDS)
    if getattr(request, "path", "").startswith(API_PATH_PREFIX):
        response = JsonResponse(error_body("database_unavailable", DATABASE_UNAVAILABLE_MESSAGE), status=503)
    else:
        html = f"<!doctype html><title>Unavailable</title><h1>Unavailable</h1><p>{DATABASE_UNAVAILABLE_MESSAGE}</p>"
        response = HttpResponse(html, status=503)
    response["Retry-After"] = retry
    return response
