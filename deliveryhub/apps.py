from django.apps import AppConfig, apps
from django.db.models.signals import post_delete


class DeliveryhubConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "deliveryhub"
    verbose_name = "DeliveryHub core"

    def ready(self):
        from .models import ChangeLoggedModel, log_deletion

        # Per model (not for every sender): models without change logging keep Django's fast bulk deletes.
        for model in apps.get_models():
            if issubclass(model, ChangeLoggedModel):
                post_delete.connect(log_deletion, sender=model, dispatch_uid=f"audit-delete-{model._meta.label}")
