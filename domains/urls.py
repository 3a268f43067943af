"""UI pages of the domains app (mounted at /domains/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.domain_list, name="domain-list"),
    path("add/", views.domain_add, name="domain-add"),
    path("<int:pk>/", views.domain_detail, name="domain-detail"),
    path("<int:pk>/settings/", views.domain_edit, name="domain-edit"),
    path("<int:pk>/verify/", views.DomainVerifyView.as_view(), name="domain-verify"),
    path("<int:pk>/delete/", views.DomainDeleteView.as_view(), name="domain-delete"),
    path("<int:pk>/dkim/rotate/", views.DkimRotateView.as_view(), name="dkim-rotate"),
    path("<int:pk>/dkim/<int:key_id>/export/", views.dkim_export, name="dkim-export"),
]
