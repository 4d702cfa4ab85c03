"""The outbox in the admin: every email with its state, read-only; failed ones can be
queued again once their cause is fixed."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from outbox.models import OutboxMessage
from outbox.services import outbox_retry
from portal.admin_safety import UrlGuardMixin
from portal.formats import count


def kind_words(kind: str) -> str:
    """A message kind as people say it: "reconciliation_notice" is "Reconciliation notice"."""
    return kind.replace("_", " ").capitalize()


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        kinds = OutboxMessage.objects.order_by("kind").values_list("kind", flat=True).distinct()
        return [(kind, kind_words(kind)) for kind in kinds]

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(UrlGuardMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind_label",
        "subject",
        "recipients",
        "status",
        "attempts",
        "sent_at",
    )
    list_filter = ("status", KindFilter)
    search_fields = ("subject", "key")
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]
    actions = ["retry_failed"]
    list_per_page = 50

    @admin.display(description="Kind", ordering="kind")
    def kind_label(self, obj: OutboxMessage) -> str:
        return kind_words(obj.kind)

    @admin.display(description="To")
    def recipients(self, obj: OutboxMessage) -> str:
        return ", ".join(obj.to)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        # Emails carry customers' and staff's details: superusers only.
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    @admin.action(description="Send the selected failed emails again", permissions=["retry_failed"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet) -> None:
        queued = outbox_retry(message_ids=list(queryset.values_list("pk", flat=True)))
        messages.info(request, f"{count(queued, 'failed email')} queued again.")

    def has_retry_failed_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser
