"""Training pictures: accuracy and loss curves with the start of fine-tuning marked; the\nreliability diagram of the calibrated scores."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgetl.training.results import Epoch


def plot_history(history: list[Epoch], path: str | Path, fine_tune_start: int | None) -> None:
    """Accuracy and loss, train vs val, one point per epoch, a line where stage 2 starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgetl.metrics import PLAIN_TEXT, save_figure

    epochs = [h.epoch + 1 for h in history]
    with plt.rc_context(PLAIN_TEXT):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, metric in zip(axes, ("accuracy", "loss")):
            ax.plot(epochs, [h.figure(metric) for h in history], "o-", ms=3, label=f"train {metric}")
            ax.plot(epochs, [h.figure(f"val_{metric}") for h in history], "o-", ms=3, label=f"val {metric}")
            if fine_tune_start is not None:
                ax.axvline(fine_tune_start + 0.5, color="gray", ls="--", label="start fine-tuning")
            ax.set_xlabel("epoch")
            ax.set_title(metric)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        save_figure(fig, path)
    plt.close(fig)


def plot_reliability(before: list[dict], after: list[dict], path: str | Path) -> None:
    """Accuracy against confidence per bin, before and after the temperature: a calibrated model's
    points lie on the diagonal. Marker area follows each bin's image count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgetl.metrics import PLAIN_TEXT, save_figure

    with plt.rc_context(PLAIN_TEXT):
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], color="gray", ls="--", label="calibrated")
        for bins, name in ((before, "as trained"), (after, "with the temperature")):
            if bins:
                ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "-", alpha=0.6)
                ax.scatter([b["confidence"] for b in bins], [b["accuracy"] for b in bins],
                           s=[12 + 4 * b["count"] ** 0.5 * 4 for b in bins], label=name, alpha=0.8)
        ax.set_xlabel("top score (confidence)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_title("reliability on the validation split")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
        fig.tight_layout()
        save_figure(fig, path)
    plt.close(fig)
