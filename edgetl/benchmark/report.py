"""Comparison table rows, CSV and plot of benchmark results (the plot needs matplotlib)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from edgetl.benchmark.device import DeviceFacts
from edgetl.benchmark.harness import BenchResult
from edgetl.text import clean, csv_cell

COLUMNS = ("model", "format", "precision", "size_mb", "accuracy", "target", "threads", "runtime", "init_ms",
           "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms", "fps", "peak_rss_mb")


def _accuracy(path: Path) -> float | None:
    """The verified accuracy of an artifact, from export's report.json beside it."""
    from edgetl.runs import ExportFolder

    report = ExportFolder(path.parent).report_json
    try:
        checks = json.loads(report.read_text())["checks"]
    except (OSError, ValueError, KeyError):
        return None
    return next((c["accuracy"] for c in checks if c["file"] == path.name), None)


def rows(results: list[BenchResult]) -> list[dict]:
    """One flat row per result for the comparison table and CSV."""
    out = []
    for r in results:
        out.append({"model": r.model, "format": r.format, "precision": r.precision,
                    "size_mb": r.size_bytes / 1e6, "accuracy": _accuracy(Path(r.path or r.model)),
                    "target": r.device.target, "threads": r.threads, "runtime": r.runtime,
                    **{k: getattr(r, k) for k in ("init_ms", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms", "fps",
                                                  "peak_rss_mb")}})
    return out


def write_csv(results: list[BenchResult], path: str | Path) -> None:
    """The comparison rows as CSV."""
    table = rows(results)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        # a device names the format, precision, runtime and target: never a formula in a spreadsheet
        writer.writerows({k: csv_cell(v) if isinstance(v, str) else v for k, v in row.items()} for row in table)


def plot(results: list[BenchResult], path: str | Path) -> None:
    """Box plot of the latency samples of each (model, threads, target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgetl.metrics import PLAIN_TEXT, save_figure

    labels, data = [], []
    for r in results:
        samples = r.samples_ms or [v for v in (r.min_ms, r.mean_ms) if v is not None]
        labels.append(f"{clean(r.model)}\n{r.threads or 'default'} thr, {r.device.target}")
        data.append(samples)
    with plt.rc_context(PLAIN_TEXT):  # model names are plain text, never maths
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(data)), 4.5))
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8, rotation=20, ha="right")
        ax.set_ylabel("latency (ms)")
        ax.set_title("edgetl bench: steady-state latency per inference")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        save_figure(fig, path)
    plt.close(fig)


def oversubscribed(results: list[BenchResult]) -> list[tuple[int, int]]:
    """(threads, cores) wherever a result ran more threads than its device has cores: its threads
    then wait for each other, and the latency measures the waiting."""
    return sorted({(r.threads, r.device.cores) for r in results
                   if r.threads and r.device.cores and r.threads > r.device.cores})


def device_line(facts: DeviceFacts) -> str:
    """One line about a device for the terminal, every fact shown as text (a device supplies them)."""
    shown = {k: "not available" if getattr(facts, k) is None else clean(getattr(facts, k))
             for k in ("cpu", "arch", "cores", "os", "governor", "throttled", "temperature_c", "target")}
    return (f"device {shown['target']}: {shown['cpu']} ({shown['arch']}, {shown['cores']} cores), {shown['os']}; "
            f"governor {shown['governor']}, throttled {shown['throttled']}, temperature {shown['temperature_c']}")
