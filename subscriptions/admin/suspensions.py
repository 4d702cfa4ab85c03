"""Admin for suspensions and free periods; the suspension job owns their status."""

from __future__ import annotations

from django.contrib import admin

from portal.admin_base import PortalAdmin
from subscriptions.admin.common import SubscriptionColumns
from subscriptions.models import Suspension


@admin.register(Suspension)
class SuspensionAdmin(SubscriptionColumns, PortalAdmin):
    list_display = (
        "id",
        "customer",
        "namespace",
        "mode",
        "suspend_date",
        "resume_date",
        "days",
        "extend_term",
        "status",
    )
    list_select_related = ("subscription__customer", "subscription__namespace")
    list_filter = ("status", "mode", "extend_term")
    customer_path = "subscription__customer"
    search_fields = (
        "subscription__customer__name",
        "subscription__namespace__name",
        "ticket_url",
        "id__exact",
    )
    date_hierarchy = "suspend_date"
    autocomplete_fields = ("subscription",)
    # The suspension job starts and resumes suspensions and writes their proration lines.
    readonly_fields = ("status", "created_at", "updated_at")

    @admin.display(description="Days")
    def days(self, obj: Suspension) -> int:
        return obj.days
