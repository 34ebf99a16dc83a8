"""The field loop's commands: `label` (sort harvested frames in a page) and `compare` (is the new
run better than the old, on the same images)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgetl.console import out, print_json
from edgetl.text import safe
from edgetl.cli.app import app
from edgetl.cli.options import JSON
from edgetl.cli.show import say_served


@app.command()
def label(
    folder: Path = typer.Argument(..., help="Frames to label: a harvest folder (harvest/HOST) or any folder of images."),
    run: Optional[Path] = typer.Option(None, "--run", help="The run whose classes the frames go into (its model "
                                                          "guesses where the device left no scores)."),
    into: Optional[Path] = typer.Option(None, "--into", metavar="DATA",
                                        help="The dataset to file frames into (default: RUN's dataset)."),
    unknown_into: Optional[Path] = typer.Option(None, "--unknown-into", metavar="DIR",
                                                help="Where 'none of these' frames go (default: DATA-unknown beside "
                                                     "DATA; train with --unknown DIR)."),
    serve: str = typer.Option("127.0.0.1:8765", "--serve", metavar="[HOST:]PORT",
                              help="Where the page is served (127.0.0.1 unless HOST is given; another address needs "
                                   "the printed token)."),
    json_out: bool = JSON,
) -> None:
    """Sort frames into classes in a local web page: number keys, u none of these, x discard, z undo."""
    from edgetl.labelling import label as run_label

    def serving(url: str, session) -> None:
        c = session.counts()
        out.print(f"labelling {c['left']} frame(s) of {safe(folder)} into {safe(session.dataset.root)} "
                  f"({session.dataset.kind}: {', '.join(safe(x) for x in session.dataset.classes)}); "
                  f"'none of these' into {safe(session.dataset.unknown_folder)}", markup=False, soft_wrap=True)
        say_served("the labelling page", url)
        out.print("every decision is written at once; Ctrl-C ends the session", markup=False)

    summary = run_label(folder, run=run, into=into, serve=serve, unknown_into=unknown_into, on_serving=serving)
    if json_out:
        print_json(summary.to_dict())
    else:
        done = ", ".join(f"{safe(k)} {v}" for k, v in summary.decided.items()) or "nothing"
        out.print(f"decided: {done}; {summary.left} of {summary.total} left", markup=False)
