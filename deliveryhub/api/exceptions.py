"""Every API error is JSON: {"error": {"code": ..., "message": ..., "fields": {...}}}.

`exception_handler` covers what happens inside DRF views (an unexpected exception included: a 500 that
names nothing internal) and maps the core's domain errors: Django's `ValidationError` → 400 with field errors,
`deliveryhub.exceptions.Conflict` → 409, a request body over `DATA_UPLOAD_MAX_MEMORY_SIZE` → 413.
`page_not_found` and `server_error` (the URLconf's handler404/handler500) cover /api/ paths that reach no
view, and leave the UI's HTML pages as they are.

While the database is unreachable (a failover, a restart, terminated backends) every answer is a 503 with
`Retry-After` — JSON under /api/ (`database_unavailable`), a short page elsewhere — never a 500: from DRF views
here, from UI views through `deliveryhub.middleware.DatabaseUnavailableMiddleware`, and from middleware (sessions,
authentication) through `server_error`.
"""

import logging
import sys

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from ..constants import DATABASE_RETRY_AFTER_SECONDS
from ..errors import (
    API_PATH_PREFIX,
    DATABASE_UNAVAILABLE_MESSAGE,
    database_unavailable,
    database_unreachable,
    error_body,
)
from ..exceptions import Conflict

logger = logging.getLogger(__name__)

SERVER_ERROR_MESSAGE = "Internal server error: the error is logged with this response's X-Request-ID."


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than {limit} bytes (a message of at most "
                         f"{settings.MESSAGE_MAX_BYTES} bytes, base64 included, fits).")  # fmt: skip


def _flatten(detail):
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def exception_handler(exc, context):
    if database_unreachable(exc):
        request = context.get("request")
        logger.warning("Database unreachable while serving %s", getattr(request, "path", "?"), exc_info=exc)
        body = error_body("database_unavailable", DATABASE_UNAVAILABLE_MESSAGE)
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})  # fmt: skip
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Conflict):
        exc = ConflictError(str(exc))
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:  # not an API error: a bug. Log it with its traceback, answer a plain JSON 500.
        request = context.get("request")
        logger.error("Unexpected error in %s", getattr(request, "path", "?"), exc_info=exc)
        set_rollback()
        return Response(error_body("server_error", SERVER_ERROR_MESSAGE), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = _flatten(detail)
        message = "Invalid input."
        code = "invalid"
    else:
        fields = {}
        message = _flatten(exc.detail) if hasattr(exc, "detail") else str(exc)
        if isinstance(message, (list, dict)):
            message = str(message)
        code = exc.get_codes() if hasattr(exc, "get_codes") else "error"
        code = code if isinstance(code, str) else "error"
    return Response(error_body(code, message, fields), status=response.status_code, headers=_headers(response))


def _headers(response):
    return {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}


def permission_denied(request, exception):
    """handler403: JSON under /api/, the product's page (templates/403.html) elsewhere."""
    if request.path.startswith(API_PATH_PREFIX):
        return JsonResponse(error_body("permission_denied", str(exception) or "Not allowed."), status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    """handler404: JSON under /api/, the usual page elsewhere."""
    if request.path.startswith(API_PATH_PREFIX):
        return JsonResponse(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: JSON under /api/, the usual page elsewhere; a 503 when the database was unreachable (an error
    raised by a middleware, e.g. reading the session, reaches only this handler)."""
    if database_unreachable(sys.exc_info()[1]):
        return database_unavailable(request)
    if request.path.startswith(API_PATH_PREFIX):
        body = error_body("server_error", SERVER_ERROR_MESSAGE)
        return JsonResponse(body, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    return defaults.server_error(request)
