"""The home page's revenue chart: a server-rendered SVG (pygal), inlined in the page.

No JavaScript: pygal's tooltips load from a CDN by default (`js=[]` turns that off), and
the inline configuration script it still writes feeds only those tooltips, so it is
dropped. The same figures are in a table next to the chart for screen readers and tests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

from subscriptions import billing

SERIES = (("revenue", "QSR revenue"), ("waived", "Waived (resets)"), ("refunded", "Refunded"))
_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    colors=("#417690", "#e0a526", "#ba2121"),  # the admin's blue, amber, its error red
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=14,
    title_font_size=16,
)
_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)


class QuarterRow(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def revenue(self) -> Decimal: ...
    @property
    def waived(self) -> Decimal: ...
    @property
    def refunded(self) -> Decimal: ...


def revenue_chart(currency: str, rows: Sequence[QuarterRow]) -> SafeString:
    """A bar chart of `rows` (one a quarter) in `currency`, as inline SVG markup."""
    chart = pygal.Bar(
        js=[],
        disable_xml_declaration=True,
        style=_STYLE,
        width=560,
        height=320,
        max_scale=6,  # a few round steps on the money axis
        title=f"{currency} per quarter",
        legend_at_bottom=True,
        legend_at_bottom_columns=len(SERIES),
        value_formatter=lambda value: billing.format_money(Decimal(str(value)), currency),
        print_zeroes=False,
        margin=8,
    )
    chart.x_labels = [row.label for row in rows]
    for attr, title in SERIES:
        # pygal plots floats; the figures themselves stay Decimal in the table.
        chart.add(title, [float(getattr(row, attr)) for row in rows])
    svg = _SCRIPT.sub("", chart.render(is_unicode=True))
    # The markup is pygal's, from numbers and the labels above, all escaped by it.
    return mark_safe(svg)
