"""Training pictures: accuracy and loss curves with the start of fine-tuning marked."""
from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict], path: str | Path, fine_tune_start: int | None) -> None:
    """Accuracy and loss, train vs val, one point per epoch, a line where stage 2 starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgetl.metrics import PLAIN_TEXT, save_figure

    epochs = [h["epoch"] + 1 for h in history]
    with plt.rc_context(PLAIN_TEXT):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, metric in zip(axes, ("accuracy", "loss")):
            ax.plot(epochs, [h[metric] for h in history], "o-", ms=3, label=f"train {metric}")
            ax.plot(epochs, [h[f"val_{metric}"] for h in history], "o-", ms=3, label=f"val {metric}")
            if fine_tune_start is not None:
                ax.axvline(fine_tune_start + 0.5, color="gray", ls="--", label="start fine-tuning")
            ax.set_xlabel("epoch")
            ax.set_title(metric)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        save_figure(fig, path)
    plt.close(fig)
