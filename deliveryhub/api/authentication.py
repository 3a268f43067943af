"""`Authorization: Bearer <key>` authentication for the API."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from ..audit import set_context
from ..middleware import client_ip
from ..permissions import Principal
from ..services import authenticate_api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate with an API key. The request's user becomes the key's `Principal`."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0] != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <key>'.")
        key = authenticate_api_key(parts[1], client_ip(request))
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        principal = Principal.for_key(key)
        request._request.principal = principal
        request._request.tenant = key.tenant
        set_context(principal=principal, tenant_id=key.tenant_id)
        return principal, key

    def authenticate_header(self, request):
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describe API key authentication in the OpenAPI schema (HTTP bearer)."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer dh_live_…`"}
