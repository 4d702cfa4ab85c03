from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals.services import approval_requests_expire
        from subscriptions.services import nightly

        # The nightly run's last step expires stale requests (DOMAIN.md "Nightly jobs").
        nightly.register_step("expiry", approval_requests_expire)

        from approvals.metrics import ApprovalQueueCollector
        from portal.metrics import register_collector

        register_collector("approvals", ApprovalQueueCollector())
