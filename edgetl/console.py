"""Where output goes: results on stdout, progress and logs on stderr (rich)."""
from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from edgetl.native_logs import discarded
from edgetl.text import clean

T = TypeVar("T")

# Wide enough for tables when piped or logged (a terminal uses its own width). No emoji codes:
# a label such as ":fire:" is shown as typed. Values from files go through edgetl.text.safe.
err = Console(stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 160)
out = Console(highlight=False, soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else 160)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Discard what converters print on stdout, from Python or C++ (stdout keeps only results,
    such as --json); errors still reach stderr."""
    with discarded(1), contextlib.redirect_stdout(io.StringIO()):
        yield


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


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar on stderr (quiet when stderr is not a terminal)."""
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )
    with progress:
        yield from progress.track(items, total=total, description=description)
