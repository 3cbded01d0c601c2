"""The geometry of the dashboard's charts, drawn as server-side SVG by `templates/macros/charts.html`.

Pure functions: numbers in, rectangles and labels out. No script and no external library draws anything; the
SVG's shapes carry only classes (the stylesheet colours them, CSP `style-src 'self'`), and every chart comes with
its numbers as text (a caption and a table) for screen readers and for anyone who wants the exact values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mcp_hub.db.dashboard import MinuteCount

CHART_WIDTH: Final = 600
CHART_HEIGHT: Final = 160
_PLOT_TOP: Final = 10
_PLOT_BOTTOM: Final = 140
_PLOT_LEFT: Final = 40
_LABEL_EVERY_MINUTES: Final = 15


@dataclass(frozen=True, slots=True)
class Bar:
    """One minute: the calls' rectangle and, inside it from the bottom, the errors' rectangle."""

    x: float
    width: float
    y: float
    height: float
    error_y: float
    error_height: float
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    """A label on an axis, at `position` (x for the time axis, y for the count axis)."""

    position: float
    text: str


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    left: int
    top: int
    bottom: int
    bars: tuple[Bar, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2 or 5 times a power of ten at least `value` (at least 1): the top of a count axis."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def minute_chart(minutes: Sequence[MinuteCount]) -> BarChart:
    """Calls per minute as bars (errors as the bars' lower part), the count axis from 0 to a round top."""
    top = nice_ceiling(max((minute.calls for minute in minutes), default=0))
    plot_height = _PLOT_BOTTOM - _PLOT_TOP
    slot = (CHART_WIDTH - _PLOT_LEFT) / max(len(minutes), 1)
    bars: list[Bar] = []
    x_ticks: list[Tick] = []
    for index, minute in enumerate(minutes):
        height = plot_height * minute.calls / top
        error_height = plot_height * minute.errors / top
        x = _PLOT_LEFT + index * slot
        label = minute.start.strftime("%H:%M")
        title = f"{label} UTC: {minute.calls} call{'s' if minute.calls != 1 else ''}, {minute.errors} failed"
        bars.append(
            Bar(
                x=round(x + slot * 0.1, 2),
                width=round(slot * 0.8, 2),
                y=round(_PLOT_BOTTOM - height, 2),
                height=round(height, 2),
                error_y=round(_PLOT_BOTTOM - error_height, 2),
                error_height=round(error_height, 2),
                title=title,
            )
        )
        if minute.start.minute % _LABEL_EVERY_MINUTES == 0:
            x_ticks.append(Tick(position=round(x, 2), text=label))
    y_ticks = (Tick(position=_PLOT_BOTTOM, text="0"), Tick(position=_PLOT_TOP, text=str(top)))
    return BarChart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        left=_PLOT_LEFT,
        top=_PLOT_TOP,
        bottom=_PLOT_BOTTOM,
        bars=tuple(bars),
        x_ticks=tuple(x_ticks),
        y_ticks=y_ticks,
    )


def shares(values: Sequence[int]) -> list[float]:
    """Each value as a percentage of the largest (the length of its bar in a ranking); 0 for an all-zero list."""
    largest = max(values, default=0)
    return [round(100 * value / largest, 1) if largest else 0.0 for value in values]
