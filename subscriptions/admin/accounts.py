"""Admin for who is billed and where seats are counted: customers, their namespaces and
the namespaces' seat usage reports."""

from __future__ import annotations

from django.contrib import admin

from portal.admin_base import PortalAdmin
from portal.admin_lists import SalesManagerFilter
from subscriptions.admin_actions import CUSTOMER_ACTIONS
from subscriptions.models import Customer, Namespace, SeatUsageReport


@admin.register(Customer)
class CustomerAdmin(PortalAdmin):
    list_display = ("name", "billing_email", "currency", "owner", "updated_at")
    list_select_related = ("owner",)
    list_filter = ("currency", ("owner", SalesManagerFilter))
    search_fields = ("name", "billing_email", "id__exact")
    customer_path = "pk"
    # Ownership also grants an object permission: the "Assign sales manager" action
    # changes both together.
    readonly_fields = ("owner", "created_at", "updated_at")
    readonly_once_created = ("currency",)
    object_actions = CUSTOMER_ACTIONS


@admin.register(Namespace)
class NamespaceAdmin(PortalAdmin):
    list_display = (
        "name",
        "kind",
        "customer",
        "license_key",
        "seats_in_use",
        "max_seats_used",
        "max_seats_used_changed_at",
    )
    list_select_related = ("customer",)
    list_filter = ("kind",)
    search_fields = ("name", "license_key", "instance_id", "customer__name", "id__exact")
    autocomplete_fields = ("customer",)
    # Seat refresh and max-seats resets own these; a typo here would bill a customer.
    readonly_fields = (
        "seats_in_use",
        "max_seats_used",
        "max_seats_used_changed_at",
        "created_at",
        "updated_at",
    )


@admin.register(SeatUsageReport)
class SeatUsageReportAdmin(PortalAdmin):
    list_display = (
        "namespace",
        "customer",
        "date",
        "billable_users",
        "max_historical_user_count",
        "instance_id",
        "received_at",
    )
    list_select_related = ("namespace__customer",)
    customer_path = "namespace__customer"
    list_filter = ("namespace__kind",)
    search_fields = (
        "namespace__name",
        "namespace__license_key",
        "namespace__instance_id",
        "id__exact",
    )
    date_hierarchy = "date"
    ordering = ("-date",)
    raw_id_fields = ("namespace",)
    readonly_fields = ("received_at",)

    @admin.display(description="Customer", ordering="namespace__customer__name")
    def customer(self, obj: SeatUsageReport) -> Customer:
        return obj.namespace.customer
