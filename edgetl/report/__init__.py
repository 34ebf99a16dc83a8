"""`edgetl report`: a self-contained HTML page per run (data, training, mistakes, export, bench,
settings) and one comparing runs side by side. numpy and OpenCV only (thumbnails)."""
from __future__ import annotations

import logging
from pathlib import Path

from edgetl.report.page import write_comparison, write_report

__all__ = ["refresh", "write_comparison", "write_report"]


def refresh(run: str | Path) -> Path | None:
    """Rewrite RUN/report.html after a command changed the run; a report that cannot be written
    is a warning, never the command's failure (the command's own results are already safe)."""

    try:
        return write_report(run)
    except Exception as e:  # the report is a view; a broken view must not undo a finished export
        logging.getLogger(__name__).warning("the report was not written (%s: %s)", type(e).__name__, e)
        return None
