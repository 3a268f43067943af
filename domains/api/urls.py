from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is deliveryhub.api.views.ApiRootView
router.register("domains", views.DomainViewSet)

urlpatterns = router.urls
