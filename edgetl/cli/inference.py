"""`edgetl predict` and `edgetl eval`: a model's answers on images."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rich.table import Table
import typer

from edgetl.console import err, out, print_json
from edgetl.errors import EdgetlError
from edgetl.text import clean, safe
from edgetl.cli.app import app
from edgetl.cli.options import CLASS_DEPTH, JSON, LABELS, MISTAKES_SHOWN, THREADS, THRESHOLD
from edgetl.cli.show import scores_line


@app.command()
def predict(
    model: Path = typer.Argument(..., help="A .tflite, .onnx or .keras model."),
    images: list[Path] = typer.Argument(..., help="Image files or folders."),
    top_k: int = typer.Option(3, "--top-k", min=1, help="How many labels per image."),
    labels: Optional[Path] = LABELS,
    threads: Optional[int] = THREADS,
    provider: Optional[str] = typer.Option(None, help="ONNX Runtime execution provider."),
    threshold: Optional[float] = THRESHOLD,
    json_out: bool = typer.Option(False, "--json", help="One JSON object per image on stdout."),
) -> None:
    """Classify images: a line per image with its top-k labels and scores ('unknown' under the threshold)."""
    from edgetl.evaluation import predict as run_predict
    from edgetl.runtime import load

    clf = load(model, threads=threads, labels=labels, provider=provider, threshold=threshold)
    warned = False
    read, skipped = 0, []

    def say_skipped(p) -> None:
        err.print(f"skipped {clean(p.path)}: {clean(p.error)}", markup=False, soft_wrap=True)
        if json_out:
            print(json.dumps(p.to_dict()), flush=True)

    for p in run_predict(clf, list(images), top_k):
        if p.error:
            skipped.append(p)
            if read:  # until one file is read, held back: a lone bad file is one error line of its own
                say_skipped(p)
            continue
        if not read:
            for held in skipped:
                say_skipped(held)
        read += 1
        if clf.unlabelled_logits and not warned:
            warned = True
            err.print(f"[yellow]warning:[/] {safe(model)} has no labels and its outputs are not probabilities: if it is "
                      "a feature extractor rather than a classifier, these scores mean nothing (give --labels FILE if "
                      "it is a classifier)", soft_wrap=True)
        if json_out:
            print(json.dumps(p.to_dict()), flush=True)
        elif p.labels is not None:  # multi-label: the set present, or none (with the nearest label)
            found = scores_line([(c.label, c.score) for c in p.labels]) if p.labels else \
                f"none ({scores_line([(c.label, c.score) for c in p.top[:1]])})"
            out.print(f"{clean(p.path)}: {found}", markup=False)
        else:
            scores = scores_line([(c.label, c.score) for c in p.top])
            out.print(f"{clean(p.path)}: {f'unknown ({scores})' if p.unknown else scores}", markup=False)
    if skipped and read:
        err.print(f"{read} image(s) classified, {len(skipped)} skipped", markup=False)
    if not read:
        first = skipped[0]
        if len(skipped) == 1:
            raise EdgetlError(first.error, path=first.path, fix="give a jpg, png, bmp, gif or webp file")
        raise EdgetlError(f"none of the {len(skipped)} files could be read as an image (the first: {clean(first.error)})",
                          path=first.path, fix="give jpg, png, bmp, gif or webp files")


@app.command("eval")
def eval_cmd(
    model: Path = typer.Argument(..., help="A .tflite, .onnx or .keras model."),
    data: Path = typer.Argument(..., help="A dataset folder or CSV (any layout `data check` accepts)."),
    split: str = typer.Option("auto", help="auto: the test split, else a validation folder, else every image; never "
                                           "an image the model's run trained on. Or train, val, test, all."),
    class_depth: int = CLASS_DEPTH,
    labels: Optional[Path] = LABELS,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads (default: every usable core)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the confusion matrix PNG here."),
    threshold: Optional[float] = THRESHOLD,
    unknown: Optional[Path] = typer.Option(None, "--unknown", metavar="DIR", help="Images that are none of the "
                                           "classes: the share answered 'unknown' and AUROC known-vs-unknown."),
    json_out: bool = JSON,
) -> None:
    """Accuracy, per-class precision/recall and the confusion matrix of a model on a dataset; with
    'unknown' under the threshold, the share answered and their accuracy."""
    from edgetl.evaluation import evaluate
    from edgetl.metrics import plot_confusion

    res = evaluate(model, data, split=split, threads=threads, labels=labels, class_depth=class_depth,
                   threshold=threshold, unknown=unknown)
    if plot and res.labels:  # multi-label: precision-recall per label instead of a confusion matrix
        from edgetl.label_metrics import plot_pr_curves

        plot_pr_curves(res.truth, res.probabilities, res.report.labels, plot)
    elif plot:
        plot_confusion(res.report, str(plot), title=Path(res.model).name)
    if json_out:
        print_json(res.to_dict())
        return
    rep = res.report
    what = "exact match (every label right)" if res.labels else "accuracy"
    out.print(f"{safe(res.model)} ({safe(res.runtime)}) on {safe(data)}: scored {rep.count} images ({safe(res.how)}): "
              f"{what} [bold]{rep.accuracy:.4f}[/] ({round(rep.accuracy * rep.count)}/{rep.count}), "
              f"{res.images_per_s:.1f} images/s {f'in batches of {res.batch}' if res.batch > 1 else 'one at a time'}, "
              f"{res.latency_ms:.2f} ms for one image alone", soft_wrap=True)
    sel = res.selective
    if sel is not None:
        auc = f"; ROC AUC {sel.roc_auc:.4f}" if sel.roc_auc is not None else ""
        if sel.threshold > 0:
            answered = f"accuracy {sel.accuracy:.4f} on those" if sel.accuracy is not None else "none answered"
            out.print(f"'unknown' under {sel.threshold:.3f}: {sel.coverage:.1%} answered ({sel.unknown} unknown), "
                      f"{answered}{auc}", soft_wrap=True)
        elif auc:
            out.print(f"no 'unknown' threshold (the model has none; --threshold sets one){auc}", soft_wrap=True)
        if sel.unknown_images:
            separation = (f"; AUROC known vs unknown {sel.auroc_known_unknown:.4f}"
                          if sel.auroc_known_unknown is not None else "")
            out.print(f"--unknown: {sel.unknown_rejected:.1%} of {sel.unknown_images} images answered 'unknown'"
                      f"{separation}", soft_wrap=True)
    if res.labels:
        ml = res.labels
        out.print(f"multi-label: mAP {ml.map if ml.map is not None else float('nan'):.4f}, micro F1 {ml.micro_f1:.4f}, "
                  f"macro F1 {ml.macro_f1:.4f} (a label is present at a score of 0.5 or more)", markup=False)
        table = Table("label", "AP", "precision", "recall", "F1", "support")
        for x in ml.per_label:
            table.add_row(safe(x.label), f"{x.ap:.3f}" if x.ap is not None else "-", f"{x.precision:.3f}",
                          f"{x.recall:.3f}", f"{x.f1:.3f}", str(x.support))
        out.print(table)
    else:
        table = Table("class", "precision", "recall", "support")
        for c in rep.per_class:
            table.add_row(safe(c.label), f"{c.precision:.3f}", f"{c.recall:.3f}", str(c.support))
        out.print(table)
        cm = Table("true \\ predicted", *map(safe, rep.labels), title="confusion matrix")
        for label, row in zip(rep.labels, rep.confusion):
            cm.add_row(safe(label), *map(str, row))
        out.print(cm)
    if res.mistakes:
        shown = res.mistakes[:MISTAKES_SHOWN]
        out.print(f"{len(res.mistakes)} misclassified, most confident first"
                  + (f" (the first {len(shown)}; --json lists every one)" if len(shown) < len(res.mistakes) else "") + ":")
        for m in shown:
            out.print(f"  {safe(m.path)}: {safe(m.true)} taken for {safe(m.predicted)} {m.score:.3f}")
    if res.skipped:
        out.print(f"[yellow]{len(res.skipped)} file(s) skipped[/] (not counted):")
        for item in res.skipped:
            out.print(f"  {safe(item.path)}: {safe(item.reason)}")
    if plot:
        out.print(f"{'precision-recall curves' if res.labels else 'confusion matrix'} written to {safe(plot)}")
