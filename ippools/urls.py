"""UI routes of the IP pools app, mounted at /ip-pools/."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.pool_list, name="ippool-list"),
    path("<int:pk>/", views.pool_detail, name="ippool-detail"),
    path("<int:pk>/members/add/", views.pool_add_member, name="ippool-add-member"),
    path("<int:pk>/members/<int:member_pk>/remove/", views.pool_remove_member, name="ippool-remove-member"),
    path("<int:pk>/grants/add/", views.pool_grant, name="ippool-grant"),
    path("addresses/", views.ipaddress_list, name="ipaddress-list"),
    path("addresses/<int:pk>/", views.ipaddress_detail, name="ipaddress-detail"),
    path("addresses/<int:pk>/check-blocklists/", views.ipaddress_check, name="ipaddress-check-blocklists"),
    path("addresses/<int:pk>/pause/", views.ipaddress_pause, name="ipaddress-pause"),
    path("addresses/<int:pk>/resume/", views.ipaddress_resume, name="ipaddress-resume"),
    path("addresses/<int:pk>/start-warmup/", views.ipaddress_start_warmup, name="ipaddress-start-warmup"),
    path("blocklists/", views.blocklist_list, name="blocklist-list"),
    path("throttle-rules/", views.throttle_rule_list, name="throttle-rule-list"),
    path("throttle-rules/<int:pk>/delete/", views.throttle_rule_delete, name="throttle-rule-delete"),
]
