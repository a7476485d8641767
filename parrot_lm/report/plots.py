"""The report's plot: val/loss per job against steps or training tokens."""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING

from parrot_lm.report.jobs import Job

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _tokens_at(job: Job, steps: list[int]) -> list[float] | None:
    """train/tokens at the given steps (linear between logged points; 0 at step 0)."""
    tokens = job.scalars.get("train/tokens")
    if tokens is None or not tokens.steps:
        return None
    import numpy as np

    xs = np.array([0, *tokens.steps], dtype=float)
    ys = np.array([0.0, *tokens.values], dtype=float)
    per_step = ys[-1] / xs[-1] if xs[-1] > 0 else 0.0
    out = np.interp(steps, xs, ys)
    beyond = np.asarray(steps, dtype=float) > xs[-1]
    out[beyond] = np.asarray(steps, dtype=float)[beyond] * per_step
    return out.tolist()


def _line_labels(jobs: list[Job]) -> list[str]:
    """Each job's label (its name when it has none), prefixed by the name when labels repeat."""
    labels = [j.label or j.name for j in jobs]
    if len(set(labels)) < len(labels):
        labels = [f"{j.name}: {j.label}" if j.label else j.name for j in jobs]
    return labels


def plot_val_loss(jobs: list[Job], title: str, x: str = "step", logy: bool = False) -> Figure:
    """A matplotlib Figure (Agg, no pyplot state) with one val/loss line per job."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for job, label in zip(jobs, _line_labels(jobs), strict=True):
        val = job.val
        if not val.steps:
            continue
        xs: list[float] | None = list(val.steps)
        if x == "tokens":
            xs = _tokens_at(job, val.steps)
            if xs is None:
                print(
                    f"warning: {job.name} has no train/tokens; left out of the plot.",
                    file=sys.stderr,
                )
                continue
        ax.plot(xs, val.values, marker="o", markersize=3, label=label)
    ax.set_xlabel("training tokens" if x == "tokens" else "step")
    ax.set_ylabel("val/loss")
    if logy:
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")  # 5.6, not 5.6 x 10^0
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    ax.set_title(f"val/loss: {title}")
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
