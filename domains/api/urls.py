from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("domains", views.DomainViewSet)

urlpatterns = router.urls
