from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscriptions and billing"

    def ready(self) -> None:
        from subscriptions import checks  # noqa: F401  (registers the system checks)
