from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscriptions and billing"

    def ready(self) -> None:
        from portal.metrics import register_collector
        from subscriptions import checks  # noqa: F401  (registers the system checks)
        from subscriptions.metrics import NightlyCollector

        # /metrics reads it at every scrape.
        register_collector("subscriptions", NightlyCollector())
