"""How the command line shows things: rich tables and bars on a terminal, plain JSON for scripts.

Tables and reports go to stdout, progress bars and messages to stderr, so that ``--json`` output and streamed
GeoJSON stay clean. On a pipe, rich prints without colours and with a fixed width.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

#: Width of the output when stdout is not a terminal.
PIPE_WIDTH = 120


#: Spaces at the end of a line, before any closing colour codes.
_TRAILING_SPACES = re.compile(r"[ \t]+((?:\x1b\[[0-9;]*m)*)$", re.MULTILINE)


class TrimmedConsole(Console):
    """A rich console whose lines never end in spaces (rich pads every cell of a table to its column's width)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Print like :meth:`rich.console.Console.print`, without the spaces at the ends of lines.

        :param objects: Any = what to print
        :param kwargs: Any = the options of :meth:`rich.console.Console.print`
        """
        with self.capture() as capture:
            super().print(*objects, **kwargs)
        self.file.write(_TRAILING_SPACES.sub(r"\1", capture.get()))
        self.file.flush()


def stdout_console() -> Console:
    """Return a console on stdout (wide enough for the tables when not a terminal), without trailing spaces.

    :return: Console = the console
    """
    console = TrimmedConsole(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        console = TrimmedConsole(file=sys.stdout, highlight=False, width=PIPE_WIDTH)
    return console


def stderr_console() -> Console:
    """Return a console on stderr, for progress bars and notes.

    :return: Console = the console
    """
    return Console(file=sys.stderr, highlight=False)


def note(message: str) -> None:
    """Print a one-line note on stderr (not part of the command's output).

    :param message: str = the note
    """
    print(message, file=sys.stderr, flush=True)


class HeldFirstWrite(io.TextIOBase):
    """A text stream that holds back its first write until a second one comes (or it is flushed by the end).

    A streamed document writes its opening (``{"type": "FeatureCollection", "features": [``) before reading any
    data; through this wrapper nothing reaches the real stream until the first page has been read, so a read that
    fails at once leaves stdout (``> file``) empty.

    :param target: TextIO = the stream to write to
    """

    def __init__(self, target: Any) -> None:
        super().__init__()
        self._target = target
        self._held: str | None = None
        self._started = False

    def writable(self) -> bool:
        """Return True: this stream is written to."""
        return True

    def write(self, text: str) -> int:
        """Write text: the first piece is held until the next one.

        :param text: str = the text
        :return: int = characters accepted
        """
        if not self._started:
            if self._held is None:
                self._held = text
                return len(text)
            self._started = True
            self._target.write(self._held)
            self._held = None
        self._target.write(text)
        return len(text)


def print_json(data: Any) -> None:
    """Print data as indented JSON on stdout.

    :param data: Any = JSON-serialisable data (other values are printed as strings)
    """
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def iso_time(epoch_millis: Any) -> str | None:
    """Format epoch milliseconds as an ISO 8601 UTC time.

    :param epoch_millis: Any = epoch milliseconds, or None
    :return: Optional[str] = e.g. ``2024-05-01T12:00:00.123Z``, None for None
    """
    if epoch_millis is None:
        return None
    moment = datetime.fromtimestamp(int(epoch_millis) / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def duration(seconds: float | None) -> str:
    """Format a measured duration for people: ``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``.

    :param seconds: Optional[float] = the duration
    :return: str = the text, "-" for None
    """
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return _long(round(seconds))


def _long(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def whole_seconds(seconds: int | None) -> str:
    """Format a duration stored in whole seconds (a job's ``processing_duration``), without inventing a fraction.

    :param seconds: Optional[int] = the stored value
    :return: str = ``0 s``, ``45 s``, ``4 min 05 s``, ``2 h 03 min``; "-" for None
    """
    if seconds is None:
        return "-"
    return f"{seconds} s" if seconds < 60 else _long(seconds)


def milliseconds(millis: int | None) -> str:
    """Format a duration stored in milliseconds (a region's ``processing_duration``, end_time - start_time).

    :param millis: Optional[int] = the duration in milliseconds
    :return: str = ``970 ms``, ``1.240 s``, ``4 min 05 s``; "-" for None
    """
    if millis is None:
        return "-"
    if millis < 1000:
        return f"{millis} ms"
    if millis < 60_000:
        return f"{millis / 1000:.3f} s"
    return _long(round(millis / 1000))


STATE_STYLES = {"running": "cyan", "complete": "green", "partial": "yellow", "failed": "red"}
STATUS_STYLES = {"SUCCESS": "green", "PARTIAL": "yellow", "FAILED": "red", "IN_PROGRESS": "cyan", "STARTED": "cyan"}


def _cell(value: RenderableType | str | None, markup: bool = False) -> RenderableType:
    """Return a table cell: strings are plain text (data may hold brackets) unless ``markup``; None shows as "-"."""
    if value is None:
        return Text("-")
    if isinstance(value, str):
        return Text.from_markup(value) if markup else Text(value)
    return value


def key_values(
    rows: Sequence[tuple[str, RenderableType | str | None]], title: str | None = None, markup: bool = False
) -> RenderableType:
    """Build a two-column table of labels and values, under a title.

    :param rows: Sequence[Tuple[str, Union[RenderableType, str, None]]] = (label, value); None shows as "-"
    :param title: Optional[str] = a title above the table
    :param markup: bool = read string values as rich markup (escape data in them with ``rich.markup.escape``)
    :return: RenderableType = the table, with the title above it when given
    """
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for label, value in rows:
        table.add_row(label, _cell(value, markup))
    if title is None:
        return table
    return Group(Text(title, style="bold underline"), table)


def bar(done: int, total: int | None, width: int = 30) -> RenderableType:
    """Build a progress bar with its figures, such as ``━━━━━━━━━━━━━━━━━ 12/16``.

    :param done: int = what is done
    :param total: Optional[int] = the total; None when unknown
    :param width: int = the bar's width in characters
    :return: RenderableType = the bar and the figures
    """
    grid = Table.grid(padding=(0, 1))
    grid.add_column()
    grid.add_column()
    if total is None:
        grid.add_row(Text(f"{done}/?"), Text("(region count not recorded yet)", style="dim"))
        return grid
    grid.add_row(ProgressBar(total=max(total, 1), completed=min(done, total), width=width), Text(f"{done}/{total}"))
    return grid


def styled(value: str | None, styles: Mapping[str, str]) -> Text:
    """Return a value coloured by a style table.

    :param value: Optional[str] = the value
    :param styles: Mapping[str, str] = value to rich style
    :return: Text = the styled text ("-" for None)
    """
    if value is None:
        return Text("-")
    return Text(value, style=styles.get(value, ""))


def rows_table(columns: Iterable[tuple[str, str]], rows: Iterable[Sequence[RenderableType | str]]) -> Table:
    """Build a table with a header.

    :param columns: Iterable[Tuple[str, str]] = (header, justify) per column; justify is "left" or "right"
    :param rows: Iterable[Sequence[Union[RenderableType, str]]] = the rows
    :return: Table = the table
    """
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for header, justify in columns:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    return table


def number(value: float | int, decimals: int = 0) -> str:
    """Format a number with thousands separators.

    :param value: Union[float, int] = the number
    :param decimals: int = digits after the point
    :return: str = the text
    """
    return f"{value:,.{decimals}f}"
