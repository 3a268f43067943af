from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("messages", views.MessageViewSet)
router.register("routes", views.RouteViewSet)
router.register("suppressions", views.SuppressionViewSet)

urlpatterns = router.urls
