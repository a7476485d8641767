"""The whole report: read every job under the inputs, then write report.md, report.csv,
report_groups.csv and val_loss.png (each atomically).

Where it goes (`out_dir_for`): the report of one dir (a sweep or a single run) into that dir,
the report of several into `--out`, a directory of its own. Every report dir holds
REPORT_MARKER, the dirs the report was made of, so a report is only ever replaced by a report
of the same dirs (`check_out_dir`): regenerating is fine, overwriting another report is not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from parrot_lm.core.errors import ReportError, StorageError
from parrot_lm.core.io import atomic_write_bytes, atomic_write_text, check_writable
from parrot_lm.report.discovery import discover, expand_inputs, find_job_dirs
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
REPORT_FILES = (REPORT_MD, REPORT_CSV, REPORT_GROUPS_CSV, VAL_LOSS_PNG)
# Written into every report dir: the dirs the report is of (relative to it, so a moved outputs/
# tree keeps its reports replaceable); only a report of the same dirs replaces it.
REPORT_MARKER = ".parrot-report.json"
OUT_EXAMPLE = "e.g. --out outputs/reports/<name>"


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
    inputs: list[Path]

    @property
    def paths(self) -> list[Path]:
        """The four report files in `out_dir` (not the marker)."""
        return [self.out_dir / name for name in REPORT_FILES]


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
    out_dir = out_dir_for(inputs, out)
    check_out_dir(out_dir, inputs)
    try:
        check_writable(out_dir)  # before the events are read: a large sweep takes a while
    except StorageError as e:  # the hint ends "choose another place": say how
        raise StorageError(f"{str(e).rstrip('.')} with --out DIR.") from e
    jobs = [load_job(j) for j in discover(inputs)]
    label_jobs(jobs)
    jobs = sort_jobs(jobs)
    groups = group_jobs(jobs)
    markdown = render_markdown(jobs)
    if has_seed_groups(groups):  # otherwise each group is one job: the table above says it
        markdown += "\n## Seed groups\n\n" + render_groups_markdown(groups)
    figure = plot_val_loss(jobs, sweep_title(inputs), x=x, logy=logy, groups=groups)
    return Report(
        jobs,
        markdown,
        render_csv(jobs),
        figure,
        out_dir,
        groups,
        render_groups_csv(groups),
        inputs,
    )


def out_dir_for(inputs: Sequence[Path], out: str | None) -> Path:
    """Where the report of `inputs` goes: `out` if given, else the one input itself; a report of
    several dirs has no such place and needs `out` (ReportError)."""
    if out:
        out_dir = Path(out).expanduser()
        if out_dir.exists() and not out_dir.is_dir():
            raise ReportError(f"--out {out_dir} is a file; give a directory.")
        return out_dir
    if len(inputs) > 1:
        raise ReportError(
            f"A report of {len(inputs)} dirs needs --out DIR, a directory of its own "
            f"({OUT_EXAMPLE}), so that no dir's own report is replaced."
        )
    return inputs[0]


def recorded_inputs(out_dir: Path) -> set[Path] | None:
    """The dirs the report in `out_dir` was made of (its REPORT_MARKER), absolute; None when
    there is no readable marker."""
    try:
        record = json.loads((out_dir / REPORT_MARKER).read_text())
        return {_absolute(out_dir, rel) for rel in record["inputs"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_out_dir(out_dir: Path, inputs: Sequence[Path]) -> None:
    """Refuse, before anything is read or written, an `out_dir` whose report is not this
    report's to replace (ReportError):

    - a run or sweep dir (it holds runs) other than the one dir reported on: its own report
      goes there;
    - a dir holding the report of other dirs (its REPORT_MARKER says which), or report files
      without a marker (another tool's, or a report from before markers) unless it is the one
      dir reported on, the place of its own report.
    """
    wanted = {path.resolve() for path in inputs}
    own_place = len(inputs) == 1 and out_dir.resolve() == inputs[0].resolve()
    if not out_dir.is_dir() or (own_place and not (out_dir / REPORT_MARKER).exists()):
        return  # nothing there, or the dir's own report from before markers: regenerate it
    if not own_place and find_job_dirs(out_dir):
        raise ReportError(
            f"--out {out_dir} holds runs of its own (a run or sweep dir), whose own report goes "
            f"there; give this report a directory of its own ({OUT_EXAMPLE})."
        )
    present = [name for name in REPORT_FILES if (out_dir / name).exists()]
    if not present:
        return
    recorded = recorded_inputs(out_dir)
    if recorded == wanted:
        return
    files = ", ".join(present)
    what = (
        f"the report of other dirs ({_describe(recorded)})"
        if recorded
        else f"{files}, not written by a report of these dirs"
    )
    raise ReportError(
        f"{out_dir} already holds {what}; give --out a directory of its own ({OUT_EXAMPLE}), "
        f"or delete {files} there first."
    )


def _absolute(out_dir: Path, rel: str) -> Path:
    return Path(os.path.normpath(out_dir.resolve() / rel))


def _describe(dirs: set[Path], shown: int = 3) -> str:
    names = sorted(path.as_posix() for path in dirs)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def write_report(report: Report) -> list[Path]:
    """All four files, each written to a temporary file first and renamed into place (the
    out dir is made if needed), after REPORT_MARKER (first, so that a retry of the same
    command may finish an interrupted write); StorageError, one sentence, when that cannot be
    done. Returns the four paths."""
    out = report.out_dir.resolve()
    rel = sorted(os.path.relpath(path.resolve(), out) for path in report.inputs)
    atomic_write_text(report.out_dir / REPORT_MARKER, json.dumps({"inputs": rel}, indent=2) + "\n")
    payloads = [
        report.markdown.encode(),
        report.csv.encode(),
        report.groups_csv.encode(),
        figure_png(report.figure),
    ]
    for path, data in zip(report.paths, payloads, strict=True):
        atomic_write_bytes(path, data)
    return report.paths
