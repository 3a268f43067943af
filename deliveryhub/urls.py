"""URL map: UI pages, the Django admin (OTP-protected), the API under /api/v1/ and its schema."""

from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from domains.api.urls import router as domains_router
from ippools.api.urls import router as ippools_router
from queues.api.urls import router as queues_router
from queues.campaigns.api.urls import router as campaigns_router
from queues.webhooks.api.urls import router as webhooks_router
from reports.api.urls import router as reports_router
from reports.health_views import healthz, metrics_view, readyz

from .admin import admin_site
from .api.urls import router as core_router
from .api.views import ApiRootView

api_v1 = [
    path(
        "",
        ApiRootView.as_view(
            routers=[core_router, domains_router, ippools_router, queues_router, campaigns_router, webhooks_router,
                     reports_router]
        ),
        name="root",
    ),
    path("", include("deliveryhub.api.urls")),
    path("", include("domains.api.urls")),
    path("", include("ippools.api.urls")),
    path("", include("queues.api.urls")),
    path("", include("reports.api.urls")),
    path("", include("queues.campaigns.api.urls")),
    path("", include("queues.webhooks.api.urls")),
]

urlpatterns = [
    path("admin/", admin_site.urls),
    # API URL names live in the "api" namespace ("api:ippool-detail") so they never shadow UI names.
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("", include("deliveryhub.ui_urls")),
]

# Errors outside any view: JSON under /api/, HTML pages elsewhere.
handler403 = "deliveryhub.api.exceptions.permission_denied"
handler404 = "deliveryhub.api.exceptions.page_not_found"
handler500 = "deliveryhub.api.exceptions.server_error"
