from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Outgoing email"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from outbox import services, tasks

        services.hand_over = tasks.outbox_send.delay

        from outbox.metrics import OutboxCollector
        from portal.metrics import register_collector

        # /metrics reads it at every scrape.
        register_collector("outbox", OutboxCollector())
