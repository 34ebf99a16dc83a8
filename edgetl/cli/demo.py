"""`edgetl demo`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from rich.table import Table
import typer

from edgetl.console import out, print_json
from edgetl.text import safe
from edgetl.cli.app import app
from edgetl.cli.options import JSON
from edgetl.cli.show import verdict_mark


@app.command()
def demo(
    project: Path = typer.Option(Path("runs"), help="Where the dataset and runs/demo* go."),
    weights: Optional[str] = typer.Option(None, help="Backbone weights file for transfer learning."),
    per_class: Optional[int] = typer.Option(None, help="Images drawn per class (default 80 with pretrained weights, 300 from scratch)."),
    epochs: Optional[int] = typer.Option(None, help="Stage 1 epochs (default: 8 with weights, 40 from scratch)."),
    threads: int = typer.Option(2, help="Threads for verification, bench and live."),
    loop: bool = typer.Option(False, "--loop", help="Then the field loop: live --capture over a field video that also "
                                                     "shows rings, the kept frames filed (as you would in `edgetl "
                                                     "label`), train --from, export int8, compare (a few minutes more)."),
    json_out: bool = JSON,
) -> None:
    """The whole path on a dataset edgetl draws itself: check, train, export, verify, bench, live."""
    from edgetl.demo import DemoOptions, run_demo

    s = run_demo(DemoOptions(project=str(project), per_class=per_class, weights=weights, epochs=epochs, threads=threads))
    looped = None
    if loop:
        from edgetl.demo_loop import run_loop

        looped = run_loop(s.run, s.live["model_path"], threads=threads)
    if json_out:
        print_json(s.to_dict() | ({"loop": looped.to_dict()} if looped else {}))
        return
    table = Table("", "artifact", "gate", "accuracy", "agreement", "with unknown", "size MB", "p50 ms", "FPS",
                  title=f"edgetl demo: {safe(s.run)}")
    for a in s.artifacts:
        table.add_row(verdict_mark(a.verdict), safe(Path(a.file).name), a.verdict, f"{a.accuracy:.4f}",
                      f"{a.agreement:.1%}", f"{a.decision_agreement:.1%}" if a.decision_agreement is not None else "—",
                      f"{a.size_mb:.2f}", f"{a.p50_ms:.2f}" if a.p50_ms else "—", f"{a.fps:.0f}" if a.fps else "—")
    out.print(table)
    lv = s.live
    out.print(f"training: {s.training}; Keras val accuracy {s.keras_accuracy:.4f}")
    out.print(f"live ({lv['model']} on {lv['video']}): {lv['frames']} frames at {lv['fps']:.0f} FPS, p50 {lv['p50_ms']:.1f} ms")
    out.print(f"dataset: {s.dataset}\nrun: {s.run} (model.keras, history.png, confusion_matrix.png, metrics.json)\n"
              f"artifacts: {s.run}/export (labels.txt, manifest.json, report.md)\ntook {s.minutes:.1f} min")
    if looped:
        filed = ", ".join(f"{safe(k)} {v}" for k, v in sorted(looped.filed.items()))
        out.print(f"field loop: {looped.kept} of {looped.field_frames} field frames kept as doubtful, filed as {filed}; "
                  f"new run {safe(looped.new_run)}; {looped.verdict} ({looped.minutes:.1f} min)", markup=False,
                  soft_wrap=True)
        out.print(f"on a device: edgetl deploy {safe(looped.new_run)}/export/model_int8.tflite --host HOST --if-better",
                  markup=False, soft_wrap=True)
