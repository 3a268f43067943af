from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("tenants", views.TenantViewSet)
router.register("memberships", views.MembershipViewSet)
router.register("api-keys", views.ApiKeyViewSet)
router.register("audit-log", views.AuditEntryViewSet)
router.register("jobs", views.JobViewSet)

urlpatterns = router.urls
