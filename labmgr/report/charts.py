"""The report's pictures, drawn by matplotlib as SVG to embed in the page (no files, no scripts).

Each function returns one ``<svg>`` element as text, or "" when it has nothing to draw (the
report then leaves the picture out). Only matplotlib's object API is used (no pyplot): no
global state, safe in threads. Text stays text (``svg.fonttype: none``): small, selectable,
printed sharp; ids are prefixed per chart so several charts live in one page.
"""

from __future__ import annotations

import io
import re
from datetime import datetime

STAGES = ("capture", "clone", "boot", "inject", "restore", "probes")     # a drill's RTO, in order
STAGE_COLOURS = ("#9e9e9e", "#8e8cd8", "#5c9bd5", "#f0c05e", "#e07b39", "#6aaa64")   # one per stage, fixed
STATUS_COLOURS = {"none": "#e0e0e0", "pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828"}
_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "labmgr", "font.family": "sans-serif", "font.size": 9,
          "axes.spines.top": False, "axes.spines.right": False}


def probe_grid_svg(points: list[str], probes: list[str], status: dict[tuple[str, str], str]) -> str:
    """Hours x probes as a heat map: ``status[(probe, point)]`` is pass, warn (a warning failed),
    fail (a critical probe failed); a probe not run at a point is grey."""
    if not points or not probes:
        return ""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    order = list(STATUS_COLOURS)
    values = [[order.index(status.get((probe, point), "none")) for point in points] for probe in probes]
    with _style():
        figure = _figure(width=min(11.0, max(5.0, 2.6 + 0.42 * len(points))), height=1.3 + 0.3 * len(probes))
        axes = figure.add_subplot()
        axes.pcolormesh(values, cmap=ListedColormap(list(STATUS_COLOURS.values())), vmin=-0.5,
                        vmax=len(order) - 0.5, edgecolors="white", linewidth=1.5)
        axes.set_xticks([i + 0.5 for i in range(len(points))], [_short(p) for p in points],
                        rotation=60 if len(points) > 4 else 0, ha="right" if len(points) > 4 else "center")
        axes.set_yticks([i + 0.5 for i in range(len(probes))], probes)
        axes.invert_yaxis()
        axes.tick_params(length=0)
        for side in axes.spines.values():
            side.set_visible(False)
        axes.set_title("Probes at each point in time restored", loc="left")
        labels = {"pass": "passed", "warn": "warning failed", "fail": "critical failed", "none": "not run"}
        figure.legend(handles=[Patch(color=STATUS_COLOURS[k], label=v) for k, v in labels.items()],
                      loc="outside lower center", ncols=4, frameon=False)
        return _svg(figure, "grid", "Heat map of probe results per point in time restored")


def rto_trend_svg(drills: list[tuple[str, dict[str, float]]], objective: float | None = None,
                  failed: set[int] | None = None) -> str:
    """The RTO of past drills as stacked bars, one per drill (its start, its stage seconds), with the
    RTO objective as a dashed line; the drills at the indexes ``failed`` have their date in red."""
    if not drills:
        return ""
    names = [s for s in STAGES if any(s in stages for _, stages in drills)]
    names += sorted({s for _, stages in drills for s in stages} - set(names))
    with _style():
        figure = _figure(width=min(11.0, 3.5 + 0.35 * len(drills)), height=3.2)
        axes = figure.add_subplot()
        positions = range(len(drills))
        bottom = [0.0] * len(drills)
        for stage in names:
            heights = [stages.get(stage, 0.0) / 60 for _, stages in drills]
            axes.bar(positions, heights, bottom=bottom, label=stage, width=0.7,
                     color=STAGE_COLOURS[STAGES.index(stage)] if stage in STAGES else "#cccccc")
            bottom = [b + h for b, h in zip(bottom, heights)]
        if objective:
            axes.axhline(objective / 60, color="#c62828", linestyle="--", linewidth=1.2,
                         label=f"RTO objective ({objective / 60:g} min)")
        axes.set_xticks(list(positions), [_short(started) for started, _ in drills],
                        rotation=60 if len(drills) > 4 else 0, ha="right" if len(drills) > 4 else "center")
        for index, label in enumerate(axes.get_xticklabels()):
            if index in (failed or set()):
                label.set_color(STATUS_COLOURS["fail"])
        axes.set_ylabel("minutes")
        axes.set_title("RTO of each drill, by stage" + (" (failed drills' dates in red)" if failed else ""),
                       loc="left")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        return _svg(figure, "rto", "Stacked bars of each drill's stage times")


def row_counts_svg(series: dict[str, list[tuple[datetime, int]]]) -> str:
    """Row counts per hour, one line per table (``{"db/shop.invoices": [(hour, rows), ...]}``)."""
    series = {name: sorted(points) for name, points in series.items() if points}
    if not series:
        return ""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    with _style():
        figure = _figure(width=8.0, height=3.2)
        axes = figure.add_subplot()
        for name, points in series.items():
            axes.plot([moment for moment, _ in points], [rows for _, rows in points], marker="o",
                      markersize=3, linewidth=1.4, label=name)
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        axes.set_ylim(bottom=0)
        axes.set_ylabel("rows")
        axes.set_title("Row counts at each hour", loc="left")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        return _svg(figure, "rows", "Row counts per table at each hour")


def _style():
    from matplotlib import rc_context

    return rc_context(_STYLE)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure, prefix: str, label: str) -> str:
    """The figure as one inline ``<svg>``: no XML prolog, ids prefixed, a title for readers."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.08,
                   metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", text)
    head_end = text.index(">") + 1
    head = text[:head_end].replace("<svg ", f'<svg class="chart" role="img" aria-label="{label}" ', 1)
    return f"{head}<title>{label}</title>{text[head_end:]}"


def _short(text: str) -> str:
    """'2026-11-21T08:00:00Z' -> '11-21 08:00' for an axis."""
    match = re.match(r"^\d{4}-(\d\d-\d\d)T(\d\d:\d\d)", text)
    return f"{match[1]} {match[2]}" if match else (text or "clean clone")
