"""The field loop's commands: `label` (sort harvested frames in a page) and `compare` (is the new
run better than the old, on the same images)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgetl.console import out, print_json
from edgetl.text import safe
from edgetl.cli.app import app
from edgetl.cli.options import JSON, THREADS
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


@app.command()
def compare(
    old: Path = typer.Argument(..., help="The run (or a run's exported model) in use now."),
    new: Path = typer.Argument(..., help="The candidate run (trained with --from OLD) or its exported model."),
    threads: Optional[int] = THREADS,
    json_out: bool = JSON,
) -> None:
    """Is NEW better than OLD? Both on OLD's validation images, McNemar on the paired answers."""
    from rich.table import Table

    from edgetl.comparison import compare as run_compare

    result = run_compare(old, new, threads=threads)
    if json_out:
        print_json(result.to_dict())
        return
    said = f"compared {safe(old)} and {safe(new)} on {result.shared.images} shared validation images"
    if result.left_out or result.missing:
        said += f" ({result.left_out} left out: the new run trained on them; {result.missing} no longer found)"
    out.print(said, markup=False, soft_wrap=True)
    table = Table("images", "n", "old top-1", "new top-1", "gained", "lost", "old: unknown, answered right",
                  "new: unknown, answered right")
    for s in (result.shared, result.fresh):
        if s is not None:
            table.add_row(s.name, str(s.images), _share(s.old_accuracy), _share(s.new_accuracy), str(s.gained),
                          str(s.lost), f"{s.old_unknown}, {_share(s.old_answered_accuracy)}",
                          f"{s.new_unknown}, {_share(s.new_answered_accuracy)}")
    out.print(table)
    per_class = Table("class", "n", "old", "new", "change")
    for c in result.classes:
        change = (c.new_accuracy - c.old_accuracy) * 100
        per_class.add_row(safe(c.label), str(c.images), _share(c.old_accuracy), _share(c.new_accuracy), f"{change:+.1f} pts")
    out.print(per_class)
    if result.new_classes:
        out.print(f"new classes: {', '.join(safe(c) for c in result.new_classes)}", markup=False)
    out.print(result.line, markup=False)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
