from django.apps import AppConfig


class IppoolsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ippools"
