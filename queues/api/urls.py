from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is deliveryhub.api.views.ApiRootView
router.register("messages", views.MessageViewSet)
router.register("routes", views.RouteViewSet)
router.register("suppressions", views.SuppressionViewSet)
router.register("smtp-credentials", views.SmtpCredentialViewSet)

urlpatterns = router.urls
