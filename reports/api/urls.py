from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("data-requests", views.DataRequestViewSet)
router.register("retention-policies", views.RetentionPolicyViewSet)
router.register("purge-runs", views.PurgeRunViewSet)
router.register("compliance-reports", views.ComplianceReportViewSet, basename="compliance-report")

urlpatterns = router.urls
