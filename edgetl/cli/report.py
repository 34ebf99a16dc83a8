"""`edgetl report`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgetl.console import out
from edgetl.text import clean
from edgetl.cli.app import app


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., metavar="RUN...", help="Run folders (runs/exp ...)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="With several runs: where the comparison page goes "
                                                                  "(default: compare.html beside the first run)."),
) -> None:
    """One self-contained HTML page per run: is it good, where does it fail, what to ship."""
    from edgetl.report import write_comparison, write_report
    from edgetl.runs import check_run_folder

    for run in runs:
        check_run_folder(run)
    if len(runs) == 1:
        page = write_report(runs[0])
    else:
        page = write_comparison(runs, out_file or runs[0].parent / "compare.html")
    out.print(f"report: {clean(page)}", markup=False)
