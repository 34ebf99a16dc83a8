"""The `edgetl` command: parse options, call one library function, print the result."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edgetl import __version__
from edgetl.console import err, out, print_json
from edgetl.errors import EdgetlError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="edgetl: photos in, a fast verified classifier for the edge out.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect a photo folder.")
app.add_typer(data_app, name="data")

JSON = typer.Option(False, "--json", help="Machine-readable result on stdout.")


def _version(value: bool) -> None:
    if value:
        out.print(f"edgetl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          debug: bool = typer.Option(False, "--debug", help="Show full tracebacks.")) -> None:
    """edgetl: photos in, a fast verified classifier for the edge out."""


@data_app.command("check")
def data_check(
    folder: Path = typer.Argument(..., help="DATA/<class>/* or DATA/{train,val[,test]}/<class>/*"),
    val_split: float = typer.Option(0.2, help="Validation fraction when DATA has no train/val folders."),
    seed: int = typer.Option(0, help="Seed of the stratified split."),
    min_side: int = typer.Option(32, help="Warn about images whose shorter side is below this."),
    json_out: bool = JSON,
) -> None:
    """Audit a photo folder: counts per class and split, every bad file with its reason, imbalance."""
    from edgetl.data.audit import AuditOptions, audit

    result = audit(folder, AuditOptions(val_split=val_split, seed=seed, min_side=min_side))
    if json_out:
        print_json(result.to_dict())
    else:
        _print_audit(result)
    raise typer.Exit(0 if result.clean else 1)


def _print_audit(result) -> None:
    counts = result.counts()
    table = Table(title=f"{result.root} ({result.layout} layout)")
    table.add_column("class")
    for s in result.splits:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right")
    for c, per in counts.items():
        table.add_row(c, *[str(per[s]) for s in result.splits], str(sum(per.values())))
    table.add_row("[bold]all", *[f"[bold]{sum(p[s] for p in counts.values())}" for s in result.splits],
                  f"[bold]{len(result.records)}")
    out.print(table)
    sizes = result.size_stats()
    if sizes:
        out.print("image size: width {min}-{max} (median {median:.0f}), ".format(**sizes["width"])
                  + "height {min}-{max} (median {median:.0f})".format(**sizes["height"]))
    colour = {"error": "red", "warning": "yellow", "info": "dim"}
    for p in result.problems:
        out.print(f"[{colour[p.severity]}]{p.severity:7}[/] {p.path}: {p.reason}")
    n_err = sum(p.severity == "error" for p in result.problems)
    n_warn = sum(p.severity == "warning" for p in result.problems)
    verdict = "[green]clean[/]" if result.clean else f"[red]{n_err} error(s)[/], [yellow]{n_warn} warning(s)[/]"
    out.print(f"{len(result.records)} of {result.scanned} files usable, {len(result.classes)} classes: {verdict}")


THREADS = typer.Option(None, "--threads", help="Inference threads (default: the runtime's choice).")
LABELS = typer.Option(None, "--labels", help="Labels file, one per line (overrides the model's own).")


@app.command()
def predict(
    model: Path = typer.Argument(..., help="A .tflite, .onnx or .keras model."),
    images: list[Path] = typer.Argument(..., help="Image files or folders."),
    top_k: int = typer.Option(3, "--top-k", min=1, help="How many labels per image."),
    labels: Optional[Path] = LABELS,
    threads: Optional[int] = THREADS,
    provider: Optional[str] = typer.Option(None, help="ONNX Runtime execution provider."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per image on stdout."),
) -> None:
    """Classify images: a line per image with its top-k labels and scores."""
    import json

    from edgetl.evaluate import predict as run_predict
    from edgetl.runtime import load

    clf = load(model, threads=threads, labels=labels, provider=provider)
    for path, top in run_predict(clf, list(images), top_k):
        if json_out:
            print(json.dumps({"path": str(path), "top": [{"index": c.index, "label": c.label, "score": c.score}
                                                         for c in top]}), flush=True)
        else:
            out.print(f"{path}: " + ", ".join(f"{c.label} {c.score:.3f}" for c in top))


@app.command("eval")
def eval_cmd(
    model: Path = typer.Argument(..., help="A .tflite, .onnx or .keras model."),
    data: Path = typer.Argument(..., help="A dataset folder (any layout `data check` accepts)."),
    split: str = typer.Option("auto", help="auto (test, else val; all images of a one-level folder), train, val, test, all."),
    labels: Optional[Path] = LABELS,
    threads: Optional[int] = THREADS,
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the confusion matrix PNG here."),
    json_out: bool = JSON,
) -> None:
    """Accuracy, per-class precision/recall and the confusion matrix of a model on a dataset."""
    from edgetl.evaluate import evaluate
    from edgetl.metrics import plot_confusion

    res = evaluate(model, data, split=split, threads=threads, labels=labels)
    if plot:
        plot_confusion(res.report, str(plot), title=Path(res.model).name)
    if json_out:
        print_json(res.to_dict())
        return
    rep = res.report
    out.print(f"{res.model} ({res.runtime}) on {data} [{res.split}]: accuracy [bold]{rep.accuracy:.4f}[/] "
              f"({round(rep.accuracy * rep.count)}/{rep.count}), {res.images_per_s:.1f} images/s")
    table = Table("class", "precision", "recall", "support")
    for c in rep.per_class:
        table.add_row(c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", str(c.support))
    out.print(table)
    cm = Table("true \\ predicted", *rep.labels, title="confusion matrix")
    for label, row in zip(rep.labels, rep.confusion):
        cm.add_row(label, *map(str, row))
    out.print(cm)
    if plot:
        out.print(f"confusion matrix written to {plot}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning EdgetlError into one line and exit code 2 (1 for gates)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="edgetl")  # typer handles usage errors (exit 2) and typer.Exit
    except EdgetlError as e:
        if debug:
            raise
        err.print(f"[red]error:[/] {e}", soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug or an unexpected environment: still one line unless --debug
        if debug:
            raise
        err.print(f"[red]error:[/] {type(e).__name__}: {e} (run with --debug for the traceback)", soft_wrap=True)
        sys.exit(1)
