"""The base of the portal's admins, for every app: `PortalAdmin` (lists narrowed to the
accounts the user may see, history, service-backed action buttons, hostile URLs answered),
`ViewOnly` for records only services write, and `LedgerAdmin` for the two together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from portal import policy
from portal.admin_actions import ObjectActionsMixin
from portal.admin_lists import ListsAtScale
from portal.admin_safety import UrlGuardMixin
from portal.export import CsvExportMixin


class PortalAdmin(
    CsvExportMixin, ListsAtScale, UrlGuardMixin, ObjectActionsMixin, SimpleHistoryAdmin
):
    """Base of every portal admin: lists narrowed to the accounts the user may see,
    history view, service-backed action buttons, no bulk delete, no revert, hostile
    URL values answered as the admin answers bad input (`portal.admin_safety`), and
    lists that stay fast at a million rows (`portal.admin_lists`), exported as CSV
    where an admin names its columns (`portal.export`)."""

    list_per_page = 50
    # The path from the model to its customer, for the policy's account filter.
    customer_path = "customer"
    formfield_overrides: ClassVar[Mapping[type[models.Field[Any, Any]], Mapping[str, Any]]] = {
        models.URLField: {"assume_scheme": "https"}  # ticket links
    }
    # Fields other records copied when they were written (e.g. the currency): fixed
    # once the record exists.
    readonly_once_created: tuple[str, ...] = ()

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str] | tuple[str, ...]:
        readonly = tuple(self.readonly_fields)
        return readonly if obj is None else (*readonly, *self.readonly_once_created)

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        # Every record here owns money or seats; a bulk delete skips the per-object
        # confirmation that shows what else would go with it.
        actions.pop("delete_selected", None)
        return actions

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Changelists, change pages, autocomplete and the action views all start here.
        qs = super().get_queryset(request)
        return policy.visible(qs, request.user, customer_path=self.customer_path)

    def history_view(self, request, object_id, extra_context=None):
        # simple-history falls back to the last historical row of a record it cannot
        # find in the queryset; a record outside the user's accounts is not found at all.
        # It also looks the id up unchecked: "abc" would be a server error, not a 404.
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404
        return super().history_view(request, object_id, extra_context)

    def revert_disabled(self, request: HttpRequest, obj=None) -> bool:
        # A revert saves a whole old version, read-only fields included, which would
        # let anyone who can view a record rewrite seat counts, QSR state or the ledger.
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("Old versions can be viewed, not restored.")
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404
        try:
            history = getattr(self.model, self.model._meta.simple_history_manager_attribute)
            history.model._meta.pk.to_python(version_id)
        except ValidationError:
            raise Http404 from None
        return super().history_form_view(request, object_id, version_id, extra_context)

    def save_model(self, request, obj, form, change) -> None:
        # The history row records why as well as who: an edit in the admin, and of what.
        if change:
            obj._change_reason = "Admin edit: " + (", ".join(form.changed_data) or "no changes")
        else:
            obj._change_reason = "Admin: created"
        super().save_model(request, obj, form, change)


class ViewOnly:
    """For admins and inlines of records only services write: view, never edit."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class LedgerAdmin(ViewOnly, PortalAdmin):
    """The append-only ledger and the records services keep: viewable, never editable."""

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str] | tuple[str, ...]:
        # Read-only by field as well, should anyone loosen the permissions above.
        fields = [field.name for field in self.model._meta.concrete_fields]
        return [*fields, *self.readonly_fields]
