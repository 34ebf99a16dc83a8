"""Where the CLI's output goes: results on stdout, progress and logs on stderr (rich).

The library never prints: it logs through ``logging.getLogger(__name__)`` and reports progress
through :mod:`edgetl.progress`. The `edgetl` command attaches :class:`ConsoleHandler` to the
"edgetl" logger and installs rich bars (:func:`use_rich`); a script that calls the API sees
nothing unless it configures logging itself."""
from __future__ import annotations

import json
import logging
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from edgetl import progress
from edgetl.text import clean

# Wide enough for tables when piped or logged (a terminal uses its own width). No emoji codes:
# a label such as ":fire:" is shown as typed. Values from files go through edgetl.text.safe.
err = Console(stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 160)
out = Console(highlight=False, soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else 160)


def log(message: str) -> None:
    """A progress or status line for people, on stderr, printed as plain text (no markup)."""
    err.print(clean(message, keep_newlines=True), markup=False, soft_wrap=True)


def error_line(message: str) -> None:
    """The one line a failed command prints: "error: ..." with the message as plain text."""
    err.print(Text("error: ", style="red") + Text(clean(message)), soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine-readable result on stdout, one document."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


class ConsoleHandler(logging.Handler):
    """The library's log records as the CLI shows them: plain text on stderr (nothing a file or a
    device supplied is read as markup), warnings and errors prefixed in colour."""

    PREFIX = {logging.WARNING: ("warning: ", "yellow"), logging.ERROR: ("error: ", "red"),
              logging.CRITICAL: ("error: ", "red")}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = clean(record.getMessage(), keep_newlines=True)
            prefix, style = self.PREFIX.get(record.levelno, ("", ""))
            line = Text(prefix, style=style) + Text(message) if prefix else Text(message)
            err.print(line, soft_wrap=True)
        except Exception:  # a logging call must never end the program
            self.handleError(record)


def attach_logging(debug: bool = False) -> None:
    """Show the library's records on stderr: INFO and above, DEBUG too under ``--debug``."""
    logger = logging.getLogger("edgetl")
    if not any(isinstance(h, ConsoleHandler) for h in logger.handlers):
        logger.addHandler(ConsoleHandler())
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False  # a root handler someone configured would print every line twice


class _RichBar:
    """A transient rich bar on stderr, drawn only on a terminal (a log or CI gets the log lines)."""

    def __init__(self, description: str, total: int | None):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[note]}"), TimeRemainingColumn(), console=err,
                                 transient=True, disable=not err.is_terminal)
        self.progress.start()
        self.task = self.progress.add_task(clean(description), total=total, note="")

    def update(self, completed: int, note: str = "") -> None:
        self.progress.update(self.task, completed=completed, note=clean(note))

    def close(self) -> None:
        self.progress.stop()


def use_rich() -> None:
    """Draw the library's progress as rich bars (the `edgetl` command does this at start)."""
    progress.install(_RichBar)
