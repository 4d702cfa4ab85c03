"""The history pages in words: what changed, as the record's pages show it.

django-simple-history lists each change with the raw stored values: choice codes
("enabled → disabled_for_bug"), `True`, ISO timestamps with seconds, and "Deleted user
(pk=None)" for a reference that was simply empty. `HistoryInWords` shows the choice's
label, yes/no, the portal's date formats and the empty marker instead.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from simple_history.models import DeletedObject, ModelChange
from simple_history.template_utils import HistoricalRecordContextHelper

from portal.formats import EMPTY, day, moment


def in_words(field: Any, value: Any) -> Any:
    """`value` of `field` as a page shows it; values it has no words for pass through."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, DeletedObject):
        # A reference that was empty shows as a deleted record with no key.
        return EMPTY if value.pk is None else value
    choices = getattr(field, "flatchoices", None)
    if choices:
        return str(dict(choices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, date):
        return day(value)
    return value


class HistoryInWords(HistoricalRecordContextHelper):
    def prepare_delta_change_value(self, change: ModelChange, value: Any) -> Any:
        prepared = super().prepare_delta_change_value(change, value)
        return in_words(self.model._meta.get_field(change.field), prepared)
