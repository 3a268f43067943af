from django.apps import AppConfig


class DeliveryhubConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "deliveryhub"
    verbose_name = "DeliveryHub core"
