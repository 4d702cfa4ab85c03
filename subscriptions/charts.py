"""The seat-usage chart of a subscription's term, drawn server-side as inline SVG with
pygal: daily billable users, max seats used and the paid seats as steps, a line at each
reconciliation with its status and amount, and the suspended, free and QSR-paused
stretches shaded. No JavaScript: pygal's tooltips load a script from elsewhere, so they
are off and every mark carries its words as printed labels and SVG titles.

It draws what `subscriptions.selectors.seat_usage` read; it reads nothing itself.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from html import escape

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

from subscriptions import billing
from subscriptions.selectors import SPAN_KINDS, SeatUsage

# Series colours: the lines strong, the shaded stretches light (the style's opacity).
SPAN_COLOURS = {"suspended": "#d9534f", "free": "#5cb85c", "paused": "#f0ad4e", "bug": "#888888"}
USAGE, MAX_USED, PAID, RECONCILIATIONS, TODAY = (
    "#6fa8dc",
    "#e67e22",
    "#2e7d32",
    "#5b2c83",
    "#444444",
)
SERIES_NAMES = ("Billable users", "Max seats used", "Paid seats", "Reconciliations")
FONT = '-apple-system, "Segoe UI", system-ui, Roboto, "Helvetica Neue", Arial, sans-serif'
SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)


def _steps(points: list[tuple[date, int]]) -> list[tuple[date, int]]:
    """Points that draw a value held until the next change as a step."""
    steps: list[tuple[date, int]] = []
    for day, value in points:
        if steps:
            steps.append((day, steps[-1][1]))
        steps.append((day, value))
    return steps


def _month_starts(start: date, end: date) -> list[date]:
    """The first days of the months in the term, every other one or fewer in a long term
    so that at most 13 labels share the axis."""
    months = []
    day = start.replace(day=1)
    while day < end:
        if day >= start:
            months.append(day)
        day = billing.add_months(day, 1)
    step = -(-len(months) // 13)  # ceiling
    return months[::step]


def _legend_columns(data: SeatUsage) -> int:
    """The legend on one row, or two when the shaded stretches add to the five lines."""
    shaded = len({s.kind for s in data.spans})
    lines = 5 if data.term_start <= data.today < data.term_end else 4
    total = shaded + lines
    return total if total <= 6 else -(-total // 2)


def _scale(data: SeatUsage) -> tuple[int, int]:
    """The y range: from a little under the lowest count to a little over the highest, so
    the difference between used and paid seats stays visible."""
    values = [v for _, v in (*data.usage, *data.max_used, *data.paid)]
    values += [m.seats for m in data.marks if m.seats is not None]
    if not values:
        return 0, 10
    low, high = min(values), max(values)
    pad = max(2, (high - low) // 5, high // 20)
    floor = max(0, low - pad)
    return floor, high + 2 * pad


def seat_usage_chart(data: SeatUsage, *, title: str = "") -> SafeString:
    """The chart as an `<svg>` element to put inline in a page."""
    floor, top = _scale(data)
    chart = pygal.DateLine(
        js=[],  # pygal's tooltip script comes from elsewhere: none
        disable_xml_declaration=True,
        width=1100,
        height=430,
        margin=16,
        margin_right=90,  # room for the last quarter's label
        show_dots=False,
        show_legend=True,
        legend_at_bottom=True,
        legend_at_bottom_columns=_legend_columns(data),
        truncate_legend=-1,
        truncate_label=-1,
        print_labels=True,
        allow_interruptions=True,
        range=(floor, top),
        zero=floor,  # shaded stretches fill down to the bottom of the chart
        x_labels=_month_starts(data.term_start, data.term_end),
        x_value_formatter=lambda d: d.strftime("%b %y"),
        x_label_rotation=0,
        show_x_guides=False,
        show_minor_x_labels=True,
        y_title="seats",
        no_data_text="No usage reported this term",
        style=_style(data),
    )
    for kind in SPAN_KINDS:
        spans = [s for s in data.spans if s.kind == kind]
        if not spans:
            continue
        points: list[tuple[date, int] | dict | None] = []
        for span in spans:
            end = min(span.end, data.term_end) - timedelta(days=1)
            start = max(span.start, data.term_start)
            points += [
                (start, floor),
                (start, top),
                (max(end, start), top),
                (max(end, start), floor),
            ]
        chart.add(SPAN_KINDS[kind], points, fill=True, stroke_style={"width": 0})
    chart.add("Billable users", data.usage, stroke_style={"width": 1.5})
    chart.add("Max seats used", data.max_used, stroke_style={"width": 2.5})
    chart.add("Paid seats", _steps(data.paid), stroke_style={"width": 3})
    marks: list[tuple[date, int] | dict | None] = []
    # Labels on two rows, alternately, so those of neighbouring quarters do not overlap.
    rows = (top, top - (top - floor) // 12)
    for i, mark in enumerate(data.marks):
        marks += [(mark.day, floor), {"value": (mark.day, rows[i % 2]), "label": mark.label}, None]
    chart.add(
        "Reconciliations",
        marks,
        show_dots=True,
        dots_size=4,
        stroke_style={"width": 1.5, "dasharray": "5,4"},
    )
    if data.term_start <= data.today < data.term_end:
        chart.add(
            "Today",
            [(data.today, floor), (data.today, top)],
            stroke_style={"width": 1, "dasharray": "2,3"},
        )
    svg = SCRIPT.sub("", chart.render(is_unicode=True))
    svg = _with_titles(svg, data, title)
    # pygal escapes the text it draws, and _with_titles what it adds.
    return mark_safe(svg)


def _style(data: SeatUsage) -> Style:
    colours = [SPAN_COLOURS[k] for k in SPAN_KINDS if any(s.kind == k for s in data.spans)]
    colours += [USAGE, MAX_USED, PAID, RECONCILIATIONS, TODAY]
    return Style(
        font_family=FONT,
        label_font_family=FONT,
        major_label_font_family=FONT,
        legend_font_family=FONT,
        value_label_font_family=FONT,
        title_font_family=FONT,
        no_data_font_family=FONT,
        label_font_size=13,
        major_label_font_size=13,
        legend_font_size=14,
        value_label_font_size=13,
        title_font_size=15,
        no_data_font_size=20,
        background="transparent",
        plot_background="#ffffff",
        foreground="#333333",
        foreground_strong="#111111",
        foreground_subtle="#cccccc",
        opacity=".28",
        opacity_hover=".35",
        colors=tuple(colours),
        guide_stroke_color="#e4e4e4",
        major_guide_stroke_color="#e4e4e4",
    )


def _with_titles(svg: str, data: SeatUsage, title: str) -> str:
    """An accessible name for the chart and a title on each reconciliation and shaded
    stretch, which a browser shows on hover without any script."""
    words = [title or "Seat usage", f"term {data.term_start} to {data.term_end}"]
    words += [m.label for m in data.marks] + [s.label for s in data.spans]
    head = f"<title>{escape('; '.join(words))}</title>"
    svg = svg.replace("<title>Pygal</title>", "", 1).replace(">", ">" + head, 1)
    return svg.replace(' class="pygal-chart"', ' class="pygal-chart" role="img"', 1)
