"""The whole report: read every job under the inputs, then write report.md, report.csv and
val_loss.png (each atomically)."""

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
from parrot_lm.report.tables import render_csv, render_markdown, sort_jobs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
VAL_LOSS_PNG = "val_loss.png"


@dataclass
class Report:
    """A report read and rendered but not yet written: the sorted jobs, the Markdown and CSV
    tables, the val/loss figure, and the directory it goes to."""

    jobs: list[Job]
    markdown: str
    csv: str
    figure: Figure
    out_dir: Path

    @property
    def paths(self) -> list[Path]:
        return [self.out_dir / REPORT_MD, self.out_dir / REPORT_CSV, self.out_dir / VAL_LOSS_PNG]


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
    figure = plot_val_loss(jobs, sweep_title(inputs), x=x, logy=logy)
    return Report(jobs, render_markdown(jobs), render_csv(jobs), figure, out_dir)


def write_report(report: Report) -> list[Path]:
    """All three files, each written to a temporary file first and renamed into place (the
    out dir is made if needed); StorageError, one sentence, when that cannot be done."""
    payloads = [report.markdown.encode(), report.csv.encode(), figure_png(report.figure)]
    for path, data in zip(report.paths, payloads, strict=True):
        atomic_write_bytes(path, data)
    return report.paths
