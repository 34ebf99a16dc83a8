"""The search as a picture: accuracy against latency on the device for every candidate, the budget
line, the Pareto front and the chosen one."""
from __future__ import annotations

from pathlib import Path

from edgetl.tuning.record import Row, Status, TuneRecord

MARKERS = {"int8": "o", "fp16": "s", "fp32": "^"}


def point(row: Row) -> tuple[float, float, bool] | None:
    """(latency, accuracy, trained) of a row: a finalist's own artifact and verified accuracy, else
    the untrained artifact's latency and the estimate; None when it has neither."""
    if row.device_ms is not None and row.accuracy is not None:
        return row.device_ms, row.accuracy, True
    if row.latency_ms is not None and row.estimate is not None:
        return row.latency_ms, row.estimate, False
    return None


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both latency (lower) and accuracy (higher), fastest first."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def plot_tune(record: TuneRecord, path: str | Path) -> None:
    """Write the chart as a PNG (under a temporary name, then renamed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgetl.metrics import PLAIN_TEXT, save_figure

    backbones = sorted({r.backbone for r in record.rows if r.latency_ms is not None})
    colours = {b: plt.get_cmap("tab10")(i % 10) for i, b in enumerate(sorted({r.backbone for r in record.rows}))}
    placed = [(r, p) for r in record.rows if (p := point(r)) is not None]
    accuracies = [p[1] for _, p in placed]
    floor = min(accuracies, default=0.5) - 0.05
    with plt.rc_context(PLAIN_TEXT):
        fig, ax = plt.subplots(figsize=(8, 5))
        for r, (x, y, trained) in placed:
            ax.scatter([x], [y], marker=MARKERS.get(r.quant, "o"), s=70 if trained else 40,
                       facecolors=colours[r.backbone] if trained else "none", edgecolors=colours[r.backbone],
                       linewidths=1.5, zorder=3)
            ax.annotate(f"{r.size}" + (f" a{r.alpha:g}" if r.alpha != 1.0 else ""), (x, y), fontsize=7,
                        xytext=(4, 3), textcoords="offset points", color="#374151")
        # over budget with no estimate (never ranked): a mark on the floor at its latency
        over = [r for r in record.rows if r.status == Status.OVER_BUDGET and r.latency_ms is not None and point(r) is None]
        if over:
            ax.scatter([r.latency_ms for r in over], [floor] * len(over), marker="x", color="#9ca3af", zorder=2,
                       label=f"over budget, not estimated ({len(over)})")
        front = pareto([(x, y) for _, (x, y, _) in placed])
        if len(front) > 1:
            ax.plot(*zip(*front), color="#6b7280", lw=1, ls=":", zorder=1, label="Pareto front")
        ax.axvline(record.budget_ms, color="#b91c1c", ls="--", lw=1.2, label=f"budget {record.budget_ms:g} ms")
        chosen = next((r for r in record.rows if r.status == Status.CHOSEN), None)
        if chosen is not None:
            ax.scatter([chosen.device_ms], [chosen.accuracy], marker="*", s=320, color="#f59e0b", edgecolors="black",
                       zorder=4, label=f"chosen: {chosen.candidate.describe()}")
        for b in backbones:
            ax.scatter([], [], marker="o", color=colours[b], label=b)
        for q, m in MARKERS.items():
            if any(r.quant == q for r in record.rows):
                ax.scatter([], [], marker=m, facecolors="none", edgecolors="black", label=f"{q} (hollow: estimate)")
        ax.set_xlabel(f"latency on {record.where} ({record.statistic}, ms)")
        ax.set_ylabel("validation accuracy")
        ax.set_title("edgetl tune: accuracy against latency on the device")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        save_figure(fig, path)
    plt.close(fig)
