"""The timeline grid: hours (newest first) against (server, dump source), drawn line by line.

A year of hourly dumps is 8,760 rows: no widget per row or cell. The grid is a
ScrollView whose ``render_line`` draws only the visible lines, from pages of
hours the screen loads in workers when the grid asks for them (``PageWanted``).
The hour, marker and verdict columns stay put when the cells scroll sideways.
"""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...dumps.catalog import Cell
from ..backend import Column, Grid, TimelineShape

HOUR = timedelta(hours=1)
PAGE_HOURS = 168                 # a week of rows per catalog query
HEADER = 2                       # lines: server names, source names
TIME_W, MARK_W, VERDICT_W = 17, 2, 7
FIXED = TIME_W + MARK_W + VERDICT_W
EMPTY = Cell(0, 0, 0, 0)
DRIFT_MARK = "≈"                 # the hour's data profile drifted from the hour before (a YARA '!' wins)

# glyph and component class of a cell, by what it holds
LEGEND = (("●", "verified"), ("○", "unverified"), ("◆", "encrypted+verified"), ("◇", "encrypted"),
          ("✗", "bad"), ("·", "no dump"))


def glyph(cell: Cell | None) -> tuple[str, str]:
    if cell is None:
        return "…", "grid--loading"
    if not cell.exists:
        return "·", "grid--missing"
    if cell.has_bad:
        return "✗", "grid--bad"
    if cell.encrypted:
        return ("◆", "grid--good") if cell.verified else ("◇", "grid--unverified")
    return ("●", "grid--good") if cell.verified else ("○", "grid--unverified")


def describe(cell: Cell | None) -> str:
    if cell is None:
        return "loading"
    if not cell.exists:
        return "no dump"
    parts = ["bad" if cell.has_bad else "verified" if cell.verified else "not verified yet"]
    if cell.encrypted:
        parts.append("encrypted")
    parts.append(f"{cell.dumps} dump{'s' if cell.dumps > 1 else ''}")
    return ", ".join(parts)


class TimelineGrid(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"grid--header", "grid--time", "grid--cursor", "grid--current", "grid--good",
                         "grid--unverified", "grid--bad", "grid--missing", "grid--loading", "grid--pass",
                         "grid--fail"}
    DEFAULT_CSS = """
    TimelineGrid { height: 1fr; }
    TimelineGrid > .grid--header { text-style: bold; color: $text-accent; }
    TimelineGrid > .grid--time { color: $text-muted; }
    TimelineGrid > .grid--cursor { background: $accent; color: $text; text-style: bold; }
    TimelineGrid > .grid--current { color: $text-warning; text-style: bold; }
    TimelineGrid > .grid--good { color: $text-success; }
    TimelineGrid > .grid--unverified { color: $text-primary; }
    TimelineGrid > .grid--bad { color: $text-error; text-style: bold; }
    TimelineGrid > .grid--missing { color: $text-disabled; }
    TimelineGrid > .grid--loading { color: $text-disabled; }
    TimelineGrid > .grid--pass { color: $text-success; text-style: bold; }
    TimelineGrid > .grid--fail { color: $text-error; text-style: bold; }
    """
    BINDINGS = [
        Binding("up,k", "move(-1, 0)", "Up", show=False),
        Binding("down,j", "move(1, 0)", "Down", show=False),
        Binding("left,h", "move(0, -1)", "Left", show=False),
        Binding("right,l", "move(0, 1)", "Right", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(-1)", "Newest", show=False),
        Binding("end", "edge(1)", "Oldest", show=False),
        Binding("enter", "restore", "Restore here"),
    ]

    cursor_row: reactive[int] = reactive(0)
    cursor_col: reactive[int] = reactive(0)

    class PageWanted(Message):
        def __init__(self, page: int) -> None:
            super().__init__()
            self.page = page

    class CursorMoved(Message):
        def __init__(self, hour: datetime | None, column: Column | None, cell: Cell | None) -> None:
            super().__init__()
            self.hour, self.column, self.cell = hour, column, cell

    class RestoreRequested(Message):
        def __init__(self, hour: datetime) -> None:
            super().__init__()
            self.hour = hour

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shape: TimelineShape | None = None
        self.pages: dict[int, Grid] = {}
        self.requested: set[int] = set()
        self.filtered: list[datetime] | None = None    # newest first, when showing complete hours only
        self.verdicts: dict[datetime, bool] = {}
        self.current: datetime | None = None            # the hour the lab is at
        self.flagged: set[datetime] = set()             # hours with a dump a YARA rule matched in
        self.drifted: set[datetime] = set()             # hours whose data profile drifted (drift probe)
        self.widths: list[int] = []
        self.offsets: list[int] = []
        self._styles: dict[tuple[str, str], Style] = {}

    # data ------------------------------------------------------------------
    def set_shape(self, shape: TimelineShape) -> None:
        self.shape = shape
        self.pages.clear()
        self.requested.clear()
        self.widths = [max(3, min(10, len(source) + 1)) for _, source in shape.columns]
        self.offsets = [sum(self.widths[:i]) for i in range(len(self.widths))]
        self.cursor_row = 0
        self.cursor_col = 0
        self._resize()
        self._moved()

    def add_page(self, page: int, grid: Grid) -> None:
        self.pages[page] = grid
        self.refresh()
        self._moved()

    def set_filter(self, hours: list[datetime] | None) -> None:
        keep = self.hour_at(self.cursor_row)
        self.filtered = sorted(hours, reverse=True) if hours is not None else None
        self._resize()
        self.cursor_row = self.row_of(keep) if keep else 0
        self._moved()

    def set_verdicts(self, verdicts: dict[datetime, bool], current: datetime | None) -> None:
        self.verdicts, self.current = verdicts, current
        self.refresh()
        self._moved()

    def set_flagged(self, hours: set[datetime]) -> None:
        self.flagged = set(hours)
        self.refresh()

    def set_drifted(self, hours: set[datetime]) -> None:
        self.drifted = set(hours)
        self.refresh()

    @property
    def row_count(self) -> int:
        if self.shape is None or self.shape.newest is None:
            return 0
        if self.filtered is not None:
            return len(self.filtered)
        return int((self.shape.newest - self.shape.oldest) / HOUR) + 1

    def hour_at(self, row: int) -> datetime | None:
        if not 0 <= row < self.row_count:
            return None
        if self.filtered is not None:
            return self.filtered[row]
        return self.shape.newest - row * HOUR

    def row_of(self, hour: datetime) -> int:
        """The row of ``hour``, or of the nearest hour shown (filtered rows skip hours)."""
        if not self.row_count:
            return 0
        if self.filtered is not None:
            keys = [-h.timestamp() for h in self.filtered]
            return min(bisect.bisect_left(keys, -hour.timestamp()), self.row_count - 1)
        return max(0, min(self.row_count - 1, int((self.shape.newest - hour) / HOUR)))

    def _span_hours(self) -> int:
        return int((self.shape.newest - self.shape.oldest) / HOUR) + 1 if self.shape and self.shape.newest else 0

    def page_of(self, hour: datetime) -> int:
        return int((self.shape.newest - hour) / HOUR) // PAGE_HOURS

    def page_range(self, page: int) -> tuple[datetime, datetime]:
        """[since, until) of a page's hours."""
        until = self.shape.newest + HOUR - page * PAGE_HOURS * HOUR
        return until - PAGE_HOURS * HOUR, until

    def cell(self, hour: datetime, column: int) -> Cell | None:
        page = self.pages.get(self.page_of(hour))
        if page is None:
            self._want(self.page_of(hour))
            return None
        return page.get(hour, {}).get(self.shape.columns[column], EMPTY)

    def _want(self, page: int) -> None:
        if page not in self.requested and page * PAGE_HOURS < self._span_hours():
            self.requested.add(page)
            self.post_message(self.PageWanted(page))

    # drawing ---------------------------------------------------------------
    def _resize(self) -> None:
        width = FIXED + sum(self.widths)
        self.virtual_size = Size(width, self.row_count + HEADER)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if self.shape is None:
            return Strip.blank(width)
        if y < HEADER:
            fixed, cells = self._header(y)
        else:
            row = scroll_y + y - HEADER
            hour = self.hour_at(row)
            if hour is None:
                return Strip.blank(width, self.rich_style)
            fixed, cells = self._row(row, hour)
        cells = cells.crop(scroll_x, scroll_x + max(0, width - FIXED))
        return Strip.join([fixed, cells]).adjust_cell_length(width, self.rich_style)

    def _style(self, name: str) -> Style:
        # component styles are looked up once per theme, not once per cell
        key = (name, self.app.theme)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = self.get_component_rich_style(name)
        return style

    def _header(self, y: int) -> tuple[Strip, Strip]:
        style = self._style("grid--header")
        if y == 0:
            title = self.shape.environment
            fixed = Strip([Segment(f"{title[:FIXED - 1]:<{FIXED}}", style)])
            segments, previous = [], None
            for (server, _), width, offset in zip(self.shape.columns, self.widths, self.offsets):
                label = server if server != previous else ""
                group = sum(w for (s, _), w in zip(self.shape.columns, self.widths) if s == server) \
                    if label else width
                segments.append(Segment(f"{label[:group - 1]:<{width}}" if label else " " * width, style))
                previous = server
            return fixed, Strip(segments)
        fixed = Strip([Segment(f"{'hour (UTC)':<{TIME_W}}{'':<{MARK_W}}{'probes':<{VERDICT_W}}", style)])
        return fixed, Strip([Segment(f"{source[:w - 1]:<{w}}", style)
                             for (_, source), w in zip(self.shape.columns, self.widths)])

    def _row(self, row: int, hour: datetime) -> tuple[Strip, Strip]:
        on_row = row == self.cursor_row
        cursor = self._style("grid--cursor")
        time_style = cursor if on_row and self.has_focus else self._style("grid--time")
        mark = "▶" if hour == self.current else " "
        flag = "!" if hour in self.flagged else DRIFT_MARK if hour in self.drifted else " "
        verdict = self.verdicts.get(hour)
        verdict_text, verdict_style = ("", self._style("grid--time")) if verdict is None else \
            ("PASS", self._style("grid--pass")) if verdict else ("FAIL", self._style("grid--fail"))
        fixed = Strip([Segment(f"{hour:%Y-%m-%d %H:%M}".ljust(TIME_W), time_style),
                       Segment(mark, self._style("grid--current")),
                       Segment(flag, self._style("grid--fail" if flag != " " else "grid--current")),
                       Segment(verdict_text.ljust(VERDICT_W), verdict_style)])
        number = self.page_of(hour)
        page = self.pages.get(number)
        self._want(number)
        self._want(number + 1)        # the next week down is read before the cursor gets there
        cells = page.get(hour, {}) if page is not None else None
        segments = []
        for index, (column, width) in enumerate(zip(self.shape.columns, self.widths)):
            text, klass = glyph(cells.get(column, EMPTY) if cells is not None else None)
            style = cursor if on_row and index == self.cursor_col else self._style(klass)
            segments.append(Segment(f" {text}".ljust(width), style))
        return fixed, Strip(segments)

    # moving ----------------------------------------------------------------
    def watch_cursor_row(self, old: int, new: int) -> None:
        self._follow()
        self._moved()

    def watch_cursor_col(self, old: int, new: int) -> None:
        self._follow()
        self._moved()

    def _follow(self) -> None:
        """Scroll so the cursor's cell is in view."""
        if self.shape is None or not self.widths:
            return
        rows_visible = max(1, self.scrollable_content_region.height - HEADER)
        y = self.scroll_offset.y
        if self.cursor_row < y:
            y = self.cursor_row
        elif self.cursor_row >= y + rows_visible:
            y = self.cursor_row - rows_visible + 1
        x = self.scroll_offset.x
        cells_visible = max(1, self.scrollable_content_region.width - FIXED)
        left = self.offsets[min(self.cursor_col, len(self.offsets) - 1)]
        right = left + self.widths[min(self.cursor_col, len(self.widths) - 1)]
        if left < x:
            x = left
        elif right > x + cells_visible:
            x = right - cells_visible
        self.scroll_to(x, y, animate=False, immediate=True)
        self.refresh()

    def _moved(self) -> None:
        hour = self.hour_at(self.cursor_row)
        column = self.shape.columns[self.cursor_col] if self.shape and self.shape.columns else None
        cell = self.cell(hour, self.cursor_col) if hour and column else None
        self.post_message(self.CursorMoved(hour, column, cell))

    def action_move(self, rows: int, columns: int) -> None:
        if self.row_count:
            self.cursor_row = max(0, min(self.row_count - 1, self.cursor_row + rows))
        if self.widths:
            self.cursor_col = max(0, min(len(self.widths) - 1, self.cursor_col + columns))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.scrollable_content_region.height - HEADER), 0)

    def action_edge(self, direction: int) -> None:
        self.cursor_row = 0 if direction < 0 else max(0, self.row_count - 1)

    def go_to(self, hour: datetime) -> None:
        self.cursor_row = self.row_of(hour)

    def action_restore(self) -> None:
        hour = self.hour_at(self.cursor_row)
        if hour is not None:
            self.post_message(self.RestoreRequested(hour))

    def on_click(self, event: Click) -> None:
        if self.shape is None or event.y < HEADER:
            return
        row = self.scroll_offset.y + event.y - HEADER
        if 0 <= row < self.row_count:
            self.cursor_row = row
        x = event.x - FIXED
        if x >= 0:
            x += self.scroll_offset.x
            self.cursor_col = max(0, bisect.bisect_right(self.offsets, x) - 1)
        if event.chain >= 2:          # a double click restores, as Enter does
            self.action_restore()

    def visible_region(self) -> Region:
        return self.scrollable_content_region
