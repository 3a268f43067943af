from django.apps import AppConfig


class QueuesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "queues"

    def ready(self):
        from . import signals  # noqa: F401  (connects the receivers)
