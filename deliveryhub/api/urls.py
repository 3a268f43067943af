from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is deliveryhub.api.views.ApiRootView
router.register("tenants", views.TenantViewSet)
router.register("memberships", views.MembershipViewSet)
router.register("api-keys", views.ApiKeyViewSet)
router.register("audit-log", views.AuditEntryViewSet)
router.register("jobs", views.JobViewSet)

urlpatterns = router.urls
