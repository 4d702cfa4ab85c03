from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Outgoing email"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from outbox import services, tasks

        services.hand_over = tasks.outbox_send.delay
