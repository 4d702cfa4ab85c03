from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from django.contrib import admin

        from approvals.dashboard import index_context
        from approvals.services import approval_requests_expire
        from subscriptions.services import nightly

        # The nightly run's last step expires stale requests (DOMAIN.md "Nightly jobs").
        nightly.register_step("expiry", approval_requests_expire)

        # The home page is the admin's index with each role's dashboard. The URLs are
        # built after ready() (portal/urls.py), so the site serves this view.
        site_index = admin.site.index

        def index(request, extra_context=None):
            return site_index(request, {**index_context(request), **(extra_context or {})})

        admin.site.index = index  # type: ignore[method-assign]

        from approvals.metrics import ApprovalQueueCollector
        from portal.metrics import register_collector

        register_collector("approvals", ApprovalQueueCollector())
