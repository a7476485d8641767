"""The report's plot: val/loss per job against steps or training tokens."""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING, Any

from parrot_lm.report.jobs import Job
from parrot_lm.report.stats import Group

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


def _job_xs(job: Job, steps: list[int], x: str) -> list[float] | None:
    """The x values of a job's points: the steps, or its training tokens at them (None with
    a warning when it logged no train/tokens)."""
    if x != "tokens":
        return [float(s) for s in steps]
    xs = _tokens_at(job, steps)
    if xs is None:
        print(f"warning: {job.name} has no train/tokens; left out of the plot.", file=sys.stderr)
    return xs


def group_curve(group: Group, x: str = "step") -> tuple[Any, Any, Any] | None:
    """A group's mean val/loss curve and its sample sd (ddof=1) per point, at the steps every
    job of the group with a val/loss logged (the same seeds behind each point, so a shorter
    run cuts the curve rather than shifting its mean); x is the jobs' mean x there. None when
    fewer than two jobs have val/loss or they share no step."""
    import numpy as np

    jobs = [j for j in group.jobs if j.val.steps]
    if len(jobs) < 2:
        return None
    common = sorted(set.intersection(*(set(j.val.steps) for j in jobs)))
    if not common:
        return None
    values, xs = [], []
    for job in jobs:
        at = dict(zip(job.val.steps, job.val.values, strict=True))
        values.append([at[s] for s in common])
        job_xs = _job_xs(job, common, x)
        if job_xs is None:
            return None
        xs.append(job_xs)
    data = np.asarray(values, dtype=float)
    return np.mean(xs, axis=0), data.mean(axis=0), data.std(axis=0, ddof=1)


def plot_val_loss(
    jobs: list[Job],
    title: str,
    x: str = "step",
    logy: bool = False,
    groups: list[Group] | None = None,
) -> Figure:
    """A matplotlib Figure (Agg, no pyplot state) with one val/loss line per job, or, given
    seed groups, one line per group: a group of several seeds is drawn as its mean curve
    with a shaded band of ± one sample standard deviation (see group_curve)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = dict(zip(map(id, jobs), _line_labels(jobs), strict=True))
    for group in groups or [Group(labels[id(j)], [j]) for j in jobs]:
        curve = group_curve(group, x) if len(group.jobs) > 1 else None
        if curve is not None:
            xs, mean, sd = curve
            n = len([j for j in group.jobs if j.val.steps])
            (line,) = ax.plot(
                xs, mean, marker="o", markersize=3, label=f"{group.label} (mean ± sd, n={n})"
            )
            ax.fill_between(xs, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
            continue
        for job in group.jobs:  # one seed (or no common steps): the job's own line
            if not job.val.steps:
                continue
            job_xs = _job_xs(job, job.val.steps, x)
            if job_xs is not None:
                ax.plot(job_xs, job.val.values, marker="o", markersize=3, label=labels[id(job)])
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
