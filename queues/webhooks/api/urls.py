from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is deliveryhub.api.views.ApiRootView
router.register("events", views.EventViewSet, basename="event")
router.register("webhooks", views.WebhookViewSet)

urlpatterns = router.urls
