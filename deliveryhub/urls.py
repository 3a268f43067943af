"""URL map: UI pages, the Django admin (OTP-protected), the API under /api/v1/ and its schema."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .admin import admin_site

api_v1 = [
    path("", include("deliveryhub.api.urls")),
    path("", include("domains.api.urls")),
    path("", include("ippools.api.urls")),
    path("", include("queues.api.urls")),
    path("", include("reports.api.urls")),
    path("", include("queues.campaigns.api.urls")),
]

urlpatterns = [
    path("admin/", admin_site.urls),
    # API URL names live in the "api" namespace ("api:ippool-detail") so they never shadow UI names.
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("deliveryhub.ui_urls")),
]

# Errors outside any view: JSON under /api/, HTML pages elsewhere.
handler404 = "deliveryhub.api.exceptions.page_not_found"
handler500 = "deliveryhub.api.exceptions.server_error"
