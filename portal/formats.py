"""How the portal writes values for people, in one place for both apps: the empty marker,
dates and times, and counts with their noun.

Dates are ISO 8601 everywhere (2026-11-27; times 2026-11-27 14:05 in the portal's time
zone): unambiguous whoever reads them, sorted as text, and what the date fields take.
The admin's lists and pages get the same forms from `portal/locale_formats/en/formats.py`
(`FORMAT_MODULE_PATH`); text the code writes (confirmation pages, messages, emails)
uses `day` and `moment`, which read them from there.

Money is written by `subscriptions.billing.format_money` ("USD 1,000.00", "USD -594.00":
the sign after the currency), which owns rounding; `subscriptions.admin.common.money`
adds the empty marker for the admin.
"""

from __future__ import annotations

from datetime import date, datetime

from django.utils import formats, timezone
from django.utils.translation import ngettext

# What a page shows for a value a record does not have (admin.site.empty_value_display).
EMPTY = "—"


def day(value: date | None) -> str:
    """A date as every page shows it: "2026-11-27"."""
    if value is None:
        return EMPTY
    if isinstance(value, datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
        value = value.date()
    return formats.date_format(value, "DATE_FORMAT")


def moment(value: datetime | None) -> str:
    """A date and time in the portal's time zone: "2026-11-27 14:05"."""
    if value is None:
        return EMPTY
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return formats.date_format(value, "DATETIME_FORMAT")


def count(number: int, singular: str, plural: str | None = None) -> str:
    """A number with its noun, plural when it should be: "1 seat", "0 seats", "1,200 seats"."""
    noun = ngettext(singular, plural or f"{singular}s", number)
    return f"{number:,} {noun}"
