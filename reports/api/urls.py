from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is deliveryhub.api.views.ApiRootView
router.register("data-requests", views.DataRequestViewSet)
router.register("retention-policies", views.RetentionPolicyViewSet)
router.register("purge-runs", views.PurgeRunViewSet)
router.register("compliance-reports", views.ComplianceReportViewSet, basename="compliance-report")

urlpatterns = router.urls
