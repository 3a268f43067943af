from django.apps import AppConfig, apps
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_save


class DeliveryhubConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "deliveryhub"
    verbose_name = "DeliveryHub core"

    def ready(self):
        from . import audit
        from .models import ChangeLoggedModel, log_deletion

        # Per model (not for every sender): models without change logging keep Django's fast bulk deletes.
        for model in apps.get_models():
            if issubclass(model, ChangeLoggedModel):
                post_delete.connect(log_deletion, sender=model, dispatch_uid=f"audit-delete-{model._meta.label}")
        User = get_user_model()
        pre_save.connect(audit.user_pre_save, sender=User, dispatch_uid="audit-user-pre-save")
        post_save.connect(audit.user_post_save, sender=User, dispatch_uid="audit-user-save")
        post_delete.connect(audit.user_post_delete, sender=User, dispatch_uid="audit-user-delete")
