from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()  # the one API root is deliveryhub.api.views.ApiRootView
router.register("nodes", views.DeliveryNodeViewSet)
router.register("ip-addresses", views.IPAddressViewSet)
router.register("ip-pools", views.IPPoolViewSet)
router.register("ip-pool-members", views.IPPoolMemberViewSet)
router.register("ip-pool-grants", views.IPPoolGrantViewSet)
router.register("warmup-plans", views.WarmupPlanViewSet)
router.register("blocklist-checks", views.BlocklistCheckViewSet)
router.register("default-pools", views.TenantDefaultPoolViewSet)
router.register("throttle-rules", views.ThrottleRuleViewSet)
router.register("throttle-states", views.ThrottleStateViewSet)

urlpatterns = router.urls
