from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is deliveryhub.api.views.ApiRootView
router.register("lists", views.ContactListViewSet)
router.register("contacts", views.ContactViewSet)
router.register("contact-imports", views.ContactImportViewSet)
router.register("campaigns", views.CampaignViewSet)

urlpatterns = router.urls
