"""The whole report: read every job under the inputs, then write report.md, report.csv,
report_groups.csv and val_loss.png (each atomically)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from parrot_lm.core.errors import ReportError
from parrot_lm.core.io import atomic_write_bytes
from parrot_lm.report.discovery import discover, expand_inputs
from parrot_lm.report.events import load_job
from parrot_lm.report.jobs import Job
from parrot_lm.report.labels import label_jobs
from parrot_lm.report.plots import figure_png, plot_val_loss
from parrot_lm.report.stats import (
    Group,
    group_jobs,
    has_seed_groups,
    render_groups_csv,
    render_groups_markdown,
)
from parrot_lm.report.tables import render_csv, render_markdown, sort_jobs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
REPORT_GROUPS_CSV = "report_groups.csv"
VAL_LOSS_PNG = "val_loss.png"


@dataclass
class Report:
    """A report read and rendered but not yet written: the sorted jobs and their seed groups,
    the Markdown and CSV tables, the val/loss figure, and the directory it goes to."""

    jobs: list[Job]
    markdown: str
    csv: str
    figure: Figure
    out_dir: Path
    groups: list[Group]
    groups_csv: str

    @property
    def paths(self) -> list[Path]:
        names = (REPORT_MD, REPORT_CSV, REPORT_GROUPS_CSV, VAL_LOSS_PNG)
        return [self.out_dir / name for name in names]


def sweep_title(inputs: Sequence[Path]) -> str:
    """The plot's title: the last two parts (`<date>/<time>`) of each input, comma-separated."""

    def name(p: Path) -> str:
        parts = p.resolve().parts
        return "/".join(parts[-2:]) if len(parts) >= 2 else p.as_posix()

    return ", ".join(name(p) for p in inputs)


def build_report(
    args: Sequence[str], out: str | None = None, x: str = "step", logy: bool = False
) -> Report:
    """Read every run under `args` (dirs or globs); nothing is written."""
    if not args:
        raise ReportError(
            "Give at least one run dir or sweep dir (outputs/multiruns/<date>/<time>)."
        )
    if x not in ("step", "tokens"):
        raise ReportError(f"--x must be step or tokens, got {x!r}.")
    inputs = expand_inputs(args)
    out_dir = Path(out) if out else inputs[0]
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"--out {out_dir} is a file; give a directory.")
    jobs = [load_job(j) for j in discover(inputs)]
    label_jobs(jobs)
    jobs = sort_jobs(jobs)
    groups = group_jobs(jobs)
    markdown = render_markdown(jobs)
    if has_seed_groups(groups):  # otherwise each group is one job: the table above says it
        markdown += "\n## Seed groups\n\n" + render_groups_markdown(groups)
    figure = plot_val_loss(jobs, sweep_title(inputs), x=x, logy=logy, groups=groups)
    return Report(
        jobs, markdown, render_csv(jobs), figure, out_dir, groups, render_groups_csv(groups)
    )


def write_report(report: Report) -> list[Path]:
    """All four files, each written to a temporary file first and renamed into place (the
    out dir is made if needed); StorageError, one sentence, when that cannot be done."""
    payloads = [
        report.markdown.encode(),
        report.csv.encode(),
        report.groups_csv.encode(),
        figure_png(report.figure),
    ]
    for path, data in zip(report.paths, payloads, strict=True):
        atomic_write_bytes(path, data)
    return report.paths
