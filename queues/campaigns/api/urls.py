from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("lists", views.ContactListViewSet)
router.register("contacts", views.ContactViewSet)
router.register("contact-imports", views.ContactImportViewSet)
router.register("campaigns", views.CampaignViewSet)

urlpatterns = router.urls
