"""Training logs: the history table as CSV and JSON, and the loss plot.

Chapter: book/02_focal_loss_amt.md
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from timbrelab.io import atomic_output


def write_history(history: list[dict], out_dir: str | os.PathLike) -> None:
    """Write training rows to ``metrics.csv`` and ``metrics.json``.

    Chapter: book/02_focal_loss_amt.md
    """
    out_dir = Path(out_dir)
    columns = list(dict.fromkeys(key for row in history for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    with atomic_output(out_dir / "metrics.csv") as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8")
    with atomic_output(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(history, indent=1), encoding="utf-8")


def plot_losses(history: list[dict], path: str | os.PathLike) -> None:
    """Plot ``train_loss`` and ``val_loss`` against ``step`` into an image file.

    Uses matplotlib's Agg canvas directly, so it never touches the notebook's backend.

    Chapter: book/02_focal_loss_amt.md
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key in ("train_loss", "val_loss"):
        points = [(row["step"], row[key]) for row in history if key in row]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=key)
    ax.set(xlabel="step", ylabel="loss", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100)
