"""An SVG chart of benchmark runs against the targets of issue 12 (hand-written SVG, no plotting library).

    .venv/bin/python bench/chart.py RUN.json [RUN.json ...] --out chart.svg [--driver raw --driver wrk]

Reads the `--json` outputs of `bench/overhead.py` and `bench/approval_latency.py` (any number of runs of each, in
any order) and draws three panels, one row per run and series: the added p50 latency at concurrency 1 (HTTP and
stdio downstreams, auth on and off) against the 0.5 ms target, the hub/direct throughput ratio at 20 clients
against 0.8, and the approval decision -> downstream call latency against 50 ms. A dot is the median over the
run's rounds (p50 over the rounds for approvals), the whisker the min-max over its rounds; filled dots are the
rows a target applies to (auth on), hollow ones the comparison (auth off). A run is labelled by its file name.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

WIDTH = 960
LABEL_WIDTH = 330
PLOT_RIGHT_MARGIN = 40
ROW_HEIGHT = 20
PANEL_HEAD = 46
PANEL_FOOT = 34
MET_COLOUR = "#1b7837"
MISSED_COLOUR = "#b2182b"
OTHER_COLOUR = "#555555"
TARGET_COLOUR = "#d6604d"


class ChartError(ValueError):
    """An input file is not a benchmark's JSON output."""


@dataclass(frozen=True)
class Point:
    """One row of a panel: a median with its range over rounds."""

    label: str
    median: float
    low: float
    high: float
    targeted: bool  # the target applies to this row (auth on, or an approval setup)


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    target: float
    higher_is_better: bool
    points: list[Point]

    def meets(self, point: Point) -> bool:
        return point.median >= self.target if self.higher_is_better else point.median <= self.target


# --- reading the runs ------------------------------------------------------------------------------------


def _figure(row: dict[str, Any], name: str) -> tuple[float, float, float] | None:
    figure: dict[str, Any] | None = row["figures"].get(name)
    if figure is None or figure.get("median") is None:
        return None
    return float(figure["median"]), float(figure["min"]), float(figure["max"])


def panels(runs: Sequence[tuple[str, dict[str, Any]]], drivers: set[str] | None) -> list[Panel]:
    """The three panels from `runs` (label, parsed JSON)."""
    added: list[Point] = []
    ratio: list[Point] = []
    approval: list[Point] = []
    for label, doc in runs:
        kind = doc.get("benchmark")
        if kind == "overhead":
            for row in doc["rows"]:
                if drivers is not None and row["driver"] not in drivers:
                    continue
                name = f"{label} · {row['downstream']} {row['driver']} auth {row['auth']}"
                targeted = row["auth"] == "on"
                if row["kind"] == "latency" and (found := _figure(row, "added_p50_ms")) is not None:
                    added.append(Point(name, *found, targeted))
                elif row["kind"] == "throughput" and (found := _figure(row, "ratio")) is not None:
                    ratio.append(Point(name, *found, targeted))
        elif kind == "approval_latency":
            for setup in doc["setups"]:
                figure = setup["figures"]["decision_to_call_ms"]
                if figure.get("p50") is None:
                    continue
                name = f"{label} · {setup['name']} ({setup['replicas']} replica{'s' if setup['replicas'] > 1 else ''})"
                approval.append(Point(name, figure["p50"], figure["min"], figure["max"], True))
        else:
            raise ChartError(f"{label}: not the output of bench/overhead.py or bench/approval_latency.py")
    return [
        Panel("Added p50 latency at concurrency 1 (target ≤ 0.5 ms)", "ms", 0.5, False, added),
        Panel("Throughput through the hub / direct at 20 clients (target ≥ 0.8)", "", 0.8, True, ratio),
        Panel("Approval decision → downstream call start, p50 (target ≤ 50 ms)", "ms", 50.0, False, approval),
    ]


# --- drawing ---------------------------------------------------------------------------------------------


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart), the last one at or above `high`."""
    span = max(high - low, 1e-9)
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(index * step, 10) for index in range(first, last + 1)]


def _number(value: float) -> str:
    return f"{value:g}"


def draw_panel(panel: Panel, top: float) -> tuple[list[str], float]:
    """SVG elements of `panel` starting at y=`top`; the y where the next panel starts."""
    parts = [f'<text x="10" y="{top + 22}" class="title">{escape(panel.title)}</text>']
    if not panel.points:
        parts.append(f'<text x="{LABEL_WIDTH}" y="{top + 42}" class="label">no runs with this figure</text>')
        return parts, top + PANEL_HEAD + PANEL_FOOT
    values = [v for p in panel.points for v in (p.low, p.high, p.median)] + [panel.target, 0.0]
    ticks = nice_ticks(min(values), max(values) * 1.02 if max(values) > 0 else 1.0)
    low, high = min(values), ticks[-1]  # the axis starts at 0, or at the lowest value when below 0
    ticks = [tick for tick in ticks if tick >= low]
    left, right = LABEL_WIDTH, WIDTH - PLOT_RIGHT_MARGIN

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * (right - left)

    plot_top = top + PANEL_HEAD - 10
    plot_bottom = plot_top + ROW_HEIGHT * len(panel.points) + 6
    for tick in ticks:
        parts.append(f'<line x1="{x(tick):.1f}" y1="{plot_top}" x2="{x(tick):.1f}" y2="{plot_bottom}" class="grid"/>')
        tick_text = f"{_number(tick)} {panel.unit}".strip()
        parts.append(f'<text x="{x(tick):.1f}" y="{plot_bottom + 14}" class="tick">{tick_text}</text>')
    target_x = x(panel.target)
    parts.append(
        f'<line x1="{target_x:.1f}" y1="{plot_top - 4}" x2="{target_x:.1f}" y2="{plot_bottom}" class="target"/>'
    )
    parts.append(f'<text x="{target_x + 4:.1f}" y="{plot_top - 6}" class="target-label">target</text>')
    for index, point in enumerate(panel.points):
        y = plot_top + ROW_HEIGHT * index + ROW_HEIGHT / 2 + 3
        colour = (MET_COLOUR if panel.meets(point) else MISSED_COLOUR) if point.targeted else OTHER_COLOUR
        fill = colour if point.targeted else "white"
        shown = f"{point.median:.2f} [{point.low:.2f}-{point.high:.2f}]" + (f" {panel.unit}" if panel.unit else "")
        parts.append(f'<text x="{left - 8}" y="{y + 4}" class="label">{escape(point.label)}</text>')
        parts.append(
            f'<line x1="{x(point.low):.1f}" y1="{y}" x2="{x(point.high):.1f}" y2="{y}" stroke="{colour}" '
            'stroke-width="1.5"/>'
        )
        for end in (point.low, point.high):
            parts.append(
                f'<line x1="{x(end):.1f}" y1="{y - 4}" x2="{x(end):.1f}" y2="{y + 4}" stroke="{colour}" '
                'stroke-width="1.5"/>'
            )
        parts.append(
            f'<circle cx="{x(point.median):.1f}" cy="{y}" r="4.5" fill="{fill}" stroke="{colour}" stroke-width="1.5">'
            f"<title>{escape(point.label)}: {escape(shown)}</title></circle>"
        )
    return parts, plot_bottom + PANEL_FOOT


STYLE = """
text { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; fill: #222; }
.title { font-size: 15px; font-weight: 600; }
.label { font-size: 12px; text-anchor: end; }
.tick { font-size: 11px; text-anchor: middle; fill: #555; }
.grid { stroke: #e3e3e3; stroke-width: 1; }
.target { stroke: #d6604d; stroke-width: 1.5; stroke-dasharray: 5 3; }
.target-label { font-size: 11px; fill: #d6604d; }
.legend { font-size: 12px; }
"""


def svg(chart_panels: Sequence[Panel], title: str) -> str:
    """The whole chart as an SVG document."""
    body: list[str] = []
    top = 40.0
    for panel in chart_panels:
        parts, top = draw_panel(panel, top)
        body.extend(parts)
    legend_y = top + 4
    body += [
        f'<circle cx="20" cy="{legend_y}" r="4.5" fill="{MET_COLOUR}" stroke="{MET_COLOUR}"/>',
        f'<text x="30" y="{legend_y + 4}" class="legend">meets the target (auth on)</text>',
        f'<circle cx="220" cy="{legend_y}" r="4.5" fill="{MISSED_COLOUR}" stroke="{MISSED_COLOUR}"/>',
        f'<text x="230" y="{legend_y + 4}" class="legend">misses it (auth on)</text>',
        f'<circle cx="390" cy="{legend_y}" r="4.5" fill="white" stroke="{OTHER_COLOUR}" stroke-width="1.5"/>',
        f'<text x="400" y="{legend_y + 4}" class="legend">auth off (for comparison)</text>',
        f'<text x="600" y="{legend_y + 4}" class="legend">dot: median of rounds; whisker: min-max</text>',
    ]
    height = legend_y + 20
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" aria-labelledby="chart-title chart-desc">',
            f'<title id="chart-title">{escape(title)}</title>',
            '<desc id="chart-desc">Added latency, throughput ratio and approval latency per benchmark run, each '
            "against its target line, with the range over rounds as whiskers.</desc>",
            f"<style>{STYLE}</style>",
            '<rect width="100%" height="100%" fill="white"/>',
            f'<text x="10" y="24" class="title" style="font-size:17px">{escape(title)}</text>',
            *body,
            "</svg>",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="JSON outputs of overhead.py / approval_latency.py")
    parser.add_argument("--out", type=Path, required=True, help="the SVG file to write")
    parser.add_argument("--driver", action="append", help="overhead rows of these drivers only (default all)")
    parser.add_argument("--title", default="mcp-hub against the targets of issue 12", help="the chart's title")
    args = parser.parse_args(argv)
    runs: list[tuple[str, dict[str, Any]]] = []
    try:
        for path in args.runs:
            runs.append((path.stem, json.loads(path.read_text())))
        chart_panels = panels(runs, set(args.driver) if args.driver else None)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"chart: {exc}", file=sys.stderr)
        return 1
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg(chart_panels, args.title))
    print(f"chart: {out} ({sum(len(p.points) for p in chart_panels)} rows from {len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
