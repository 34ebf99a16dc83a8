"""How the CLI shows results: tables and summaries on stdout (everything from a file or a device
goes through edgetl.text.safe)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from rich.table import Table
import typer

from edgetl.console import err, out, print_json
from edgetl.text import clean, safe
from edgetl.cli.options import EXAMPLES_PER_GROUP
from edgetl.exporting.gate import Status

if TYPE_CHECKING:  # the live pipeline is imported when live runs
    from edgetl.live.pipeline import Summary


def print_audit(result) -> None:
    """One screen whatever the dataset's size: what was read, the table, problems grouped by kind
    with a few examples each (every file is in --json and in a run's audit.json)."""
    out.print(result.describe(), markup=False, soft_wrap=True)
    counts = result.counts()
    table = Table()
    table.add_column("label" if result.multi_label else "class")
    for s in result.splits:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right")
    shown = list(counts.items())
    for c, per in shown[:20]:
        table.add_row(safe(c), *[str(per[s]) for s in result.splits], str(sum(per.values())))
    if len(shown) > 20:
        table.add_row(f"... {len(shown) - 20} more", *["" for _ in result.splits], "")
    if result.multi_label:  # a label count is not an image count: images with none, then the images
        stats = result.label_stats()
        table.add_row("(no label)", *[str(stats["no_label"][s]) for s in result.splits], str(sum(stats["no_label"].values())))
        table.add_row("[bold]images", *[f"[bold]{len(result.split(s))}" for s in result.splits],
                      f"[bold]{len(result.records)}")
    else:
        table.add_row("[bold]all", *[f"[bold]{sum(p[s] for p in counts.values())}" for s in result.splits],
                      f"[bold]{len(result.records)}")
    out.print(table)
    if result.multi_label and result.label_stats()["pairs"]:
        pairs = result.label_stats()["pairs"][:5]
        out.print("seen together most: " + ", ".join(f"{safe(' + '.join(p['labels']))} {p['images']}" for p in pairs),
                  soft_wrap=True)
    sizes = result.size_stats()
    if sizes:
        out.print("image size: width {min}-{max} (median {median:.0f}), ".format(**sizes["width"])
                  + "height {min}-{max} (median {median:.0f})".format(**sizes["height"]))
    colour = {"error": "red", "warning": "yellow", "info": "dim"}
    for g in result.groups():
        head = f"[{colour[g.severity]}]{g.severity:7}[/] "
        if len(g.problems) == 1:
            p = g.problems[0]
            out.print(head + f"{safe(p.path)}: {safe(p.reason)}", soft_wrap=True)
            continue
        out.print(head + f"{len(g.problems):,} × {safe(g.kind)}", soft_wrap=True)
        for p in g.problems[:EXAMPLES_PER_GROUP]:
            out.print(f"          e.g. {safe(p.path)}: {safe(p.reason)}", soft_wrap=True)
        if len(g.problems) > EXAMPLES_PER_GROUP:
            out.print(f"          ... and {len(g.problems) - EXAMPLES_PER_GROUP:,} more (--json lists every file)")
    n_err = sum(p.severity == "error" for p in result.problems)
    n_warn = sum(p.severity == "warning" for p in result.problems)
    verdict = "[green]clean[/]" if result.clean else f"[red]{n_err} error(s)[/], [yellow]{n_warn} warning(s)[/]"
    n = len(result.classes)
    kind = ("label", "labels") if result.multi_label else ("class", "classes")
    out.print(f"{len(result.records)} of {result.scanned} files usable, {n} {kind[n != 1]}: {verdict}")


def scores_line(top: list[tuple[str, float]]) -> str:
    """``daisy 0.996, rose 0.004``: labels and scores as predict and live print them. A label with
    a comma or quote is quoted (``"tabby, tabby cat" 0.912``) so the line still reads one way;
    entries after the first that print as 0.000 are left out (a class no image is near, such as a
    background class, is not a runner-up; --json keeps the whole top-k)."""
    def label(text: str) -> str:
        text = clean(text)
        return json.dumps(text, ensure_ascii=False) if ("," in text or '"' in text) else text

    shown = [(n, v) for i, (n, v) in enumerate(top) if i == 0 or round(v, 3) > 0]
    return ", ".join(f"{label(n)} {v:.3f}" for n, v in shown)


def verdict_mark(verdict: str) -> str:
    """✓, ? or ✗ for a gate's verdict, coloured (one mapping: :func:`edgetl.exporting.gate.mark`)."""
    from edgetl.exporting.gate import mark

    return mark(verdict)


def print_checks(result) -> None:
    table = Table(title=f"{safe(result.folder)} (Keras accuracy {result.keras_accuracy:.4f})")
    for col in ("", "file", "precision", "size MB", "accuracy", "Δ pts", "agreement", "lost/gained", "max Δp", "ms",
                "gate"):
        table.add_column(col, justify="left" if col in ("", "file", "precision", "gate") else "right")
    seen = set()
    for c in result.checks + result.attempts:
        if c.file in seen:
            continue
        seen.add(c.file)
        table.add_row(verdict_mark(c.verdict), safe(c.file), c.precision, f"{c.size_bytes / 1e6:.2f}", f"{c.accuracy:.4f}",
                      f"{c.delta_points:+.2f}", f"{c.agreement:.1%}", f"{c.lost}/{c.gained}", f"{c.max_prob_diff:.2g}",
                      f"{c.latency_ms:.1f}", safe(c.verdict))
    out.print(table)
    for c in result.checks:
        if c.verdict == Status.NOT_PROVEN:
            out.print(f"[yellow]? {safe(c.file)}[/] is kept: {safe(c.note)} (--strict-gates refuses on the figures alone)",
                      soft_wrap=True)
        elif not c.kept:
            hint = ("try --calib-samples 500, or ship the fallback the table shows passing"
                    if c.precision == "int8" else "check the calibration data and the --max-drop gate")
            out.print(f"[red]✗ {safe(c.file)}[/]: {safe(c.note)}; kept as rejected/{safe(c.file)}; {hint}")


def print_model_check(check, json_out: bool) -> None:
    """A model's golden check, each place a line (and its failing images), then exit 0 or 1."""
    model = check.model
    if json_out:
        print_json(check.to_dict())
        raise typer.Exit(0 if check.ok else 1)
    if check.modified_since_export:
        err.print(f"[red]✗[/] {safe(model)} was modified since export: its sha256 differs from the manifest's")
    for report in check.reports:
        bad = [r for r in report.results if not r.ok]
        mark = "[green]✓[/]" if report.ok else "[red]✗[/]"
        out.print(f"{mark} {safe(model.name)} on {safe(report.where)} ({safe(report.runtime)}): "
                  f"{len(report.results) - len(bad)} of {len(report.results)} golden images answer as at export")
        for r in bad:
            out.print(f"  [red]✗[/] {safe(r.image)}: at export {safe(r.expected_top1)} {r.expected_score:.3f}, now "
                      f"{safe(r.got_top1)} {r.got_score:.3f} (largest probability difference {r.max_diff:.3g})")
        if report.hint:
            out.print(f"  {safe(report.hint)}")
    raise typer.Exit(0 if check.ok else 1)


def print_profiles(models: list[Path], threads: list[Optional[int]], runs: int, json_out: bool) -> None:
    """`bench --profile`: a table per model and thread count (or their JSON)."""
    from edgetl.benchmark.profile import profile

    profiles = [profile(m, t, runs) for m in models for t in threads]
    if json_out:
        print_json([p.to_dict() for p in profiles])
        return
    for p in profiles:
        timed = p.delegated is None
        table = Table(title=f"{safe(p.model)}, {safe(p.runtime)}, {p.threads or 'default'} thread(s)")
        for col in ("op", "nodes") + (("ms per inference", "share") if timed else ("outside XNNPACK",)):
            table.add_column(col, justify="left" if col == "op" else "right")
        for o in p.ops:
            table.add_row(safe(o.op), str(o.nodes), *((f"{o.ms:.3f}", f"{o.share:.1%}") if timed else
                                                     (str(o.outside_delegate) if o.outside_delegate else "",)))
        out.print(table)
        if timed:
            out.print(f"{sum(o.ms for o in p.ops):.2f} ms per inference in {p.total_nodes} nodes, over {p.runs} runs")
        else:
            out.print(f"XNNPACK runs {p.delegated} of {p.total_nodes} nodes in {p.partitions} partition(s); LiteRT's "
                      "Python API times no single op: the ones outside XNNPACK are where a graph change can help")


def print_live_summary(s: Summary, record: Path | None) -> None:
    """A live run's summary: frames, speed, why it ended, what --capture kept, what bounds the FPS."""
    out.print(f"{s.frames} frames in {s.seconds:.1f} s: {s.fps:.1f} FPS, p50 {s.latency_ms(50):.1f} ms, "
              f"p90 {s.latency_ms(90):.1f} ms, {s.dropped} dropped, {s.skipped} unreadable ({s.ended})"
              + (f"; video written to {safe(record)}" if record else ""))
    if s.outbox:
        o = s.outbox
        out.print(f"kept {o.kept} doubtful frame(s) in {safe(o.folder)} (now {o.files} frames, "
                  f"{o.bytes / 1e6:.1f} MB; {o.dropped} dropped while the writer was busy)")
    b = s.bound()
    if b is None:
        return
    if s.paced_fps:
        # reading waits for the file's clock here, so the stages bound nothing: say what sets the pace
        work = ", ".join(f"{k} {v:.1f}" for k, v in b.stage_ms.items() if k != "read")
        out.print(f"paced by the file's own {s.paced_fps:.1f} FPS (--realtime), as a camera would deliver "
                  f"it; ms per frame besides reading: {work}, of which inference {b.inference_ms:.1f}")
        return
    stages = ", ".join(f"{k} {v:.1f}" for k, v in b.stage_ms.items())
    why = (f"CPU: {b.cpu_ms_per_frame:.1f} ms per frame over {b.cores} cores" if b.bound_by == "cpu"
           else f"its slowest stage, {b.bound_by}")
    out.print(f"{b.of_bound:.0%} of this pipeline's bound of {b.bound_fps:.1f} FPS (set by {why}; "
              f"ms per frame: {stages}, of which inference {b.inference_ms:.1f})")


def print_calibration(r) -> None:
    """What ``calibrate`` chose, against what the run had, and what it rewrote."""
    b, a, c = r.before, r.after, r.confidence
    out.print(f"{safe(r.run)}: the \"unknown\" rule chosen again on {a.images} validation images, without retraining",
              markup=False)
    out.print(f"  before: similarity under {b.threshold:.3f} is unknown (answers {b.answered:.1%} of val, accuracy "
              f"{b.accuracy_answered:.4f} on those)", markup=False)
    out.print(f"  now:    similarity under {a.threshold:.3f} is unknown (answers {a.answered:.1%} of val at --answer-rate "
              f"{a.answer_rate:g}, accuracy {a.accuracy_answered:.4f} on those; {a.accuracy_all:.4f} on all)", markup=False)
    out.print(f"  score threshold {c.threshold:.3f}: {c.coverage:.1%} of val answered with both rules, precision "
              f"{c.precision:.3f}" + (f", {c.unknown_rejected:.1%} of the --unknown images refused"
                                     if c.unknown_rejected is not None and c.unknown_images else ""), markup=False)
    out.print(f"  rewrote {', '.join(safe(f) for f in r.rewritten)} in {r.seconds:.1f} s", markup=False)


def say_served(what: str, url: str) -> None:
    """Where a page is served, and how to reach a loopback one from another machine."""
    err.print(f"serving {what} at {url}", markup=False, soft_wrap=True)
    if "token=" not in url:
        from urllib.parse import urlsplit

        where = urlsplit(url)
        host = where.hostname if ":" not in (where.hostname or "") else f"[{where.hostname}]"
        err.print(f"from another machine: ssh -L {where.port}:{host}:{where.port} THIS_HOST, then open "
                  f"http://127.0.0.1:{where.port}/", markup=False, soft_wrap=True)
