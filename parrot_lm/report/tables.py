"""The report's table: jobs sorted by best val loss, as Markdown and as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from parrot_lm.report.jobs import Job
from parrot_lm.runs.run_dir import RunDir

# report.csv's columns and report.md's headers, in order; the Markdown table has no `dir`
# column and right-aligns its numbers (every column after `overrides`).
COLUMNS = [
    ("job", "job"),
    ("status", "status"),
    ("overrides", "overrides"),
    ("final_val_loss", "final val loss"),
    ("final_val_ppl", "final val ppl"),
    ("best_val_loss", "best val loss"),
    ("best_step", "best step"),
    ("steps", "steps"),
    ("tokens", "tokens"),
    ("wall_time_s", "wall time"),
    ("tokens_per_sec", "tokens/s"),
    ("dir", None),
]
CSV_COLUMNS = [name for name, _ in COLUMNS]
MD_HEADER = [header for _, header in COLUMNS if header is not None]
_MD_RIGHT = set(MD_HEADER[3:])


def sort_jobs(jobs: list[Job]) -> list[Job]:
    """Best val loss first; jobs without one, then runs marked FAILED (training raised) last,
    in their discovery order: a failed run never tops the table."""
    order = {id(j): i for i, j in enumerate(jobs)}
    return sorted(
        jobs,
        key=lambda j: (
            RunDir(j.path).is_failed(),
            j.best[0] is None,
            j.best[0] if j.best[0] is not None else 0.0,
            order[id(j)],
        ),
    )


def format_duration(seconds: float | None) -> str:
    """`3m12s`, `1h02m03s`, `7s`; "" for None."""
    if seconds is None:
        return ""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _fmt(value: float | int | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def csv_row(job: Job) -> dict[str, Any]:
    """The job's report.csv row (CSV_COLUMNS; full precision, "" where a value is unknown)."""
    best, best_step = job.best
    return {
        "job": job.name,
        "status": job.status,
        "overrides": job.label,
        "final_val_loss": _fmt(job.final_val_loss, ".6g"),
        "final_val_ppl": _fmt(job.final_val_ppl, ".6g"),
        "best_val_loss": _fmt(best, ".6g"),
        "best_step": _fmt(best_step, "d"),
        "steps": _fmt(job.steps, "d"),
        "tokens": _fmt(job.tokens, "d"),
        "wall_time_s": _fmt(job.wall_time, ".1f"),
        "tokens_per_sec": _fmt(job.tokens_per_sec, ".1f"),
        "dir": job.path.as_posix(),
    }


def md_row(job: Job) -> list[str]:
    """The job's report.md cells (MD_HEADER; rounded for reading, "" where unknown)."""
    best, best_step = job.best
    return [
        job.name,
        job.status,
        job.label,
        _fmt(job.final_val_loss, ".4f"),
        _fmt(job.final_val_ppl, ".2f"),
        _fmt(best, ".4f"),
        _fmt(best_step, "d"),
        _fmt(job.steps, "d"),
        _fmt(job.tokens, ",d"),
        format_duration(job.wall_time),
        _fmt(job.tokens_per_sec, ",.0f"),
    ]


def render_markdown(jobs: list[Job]) -> str:
    """A Markdown table of the jobs, numbers right-aligned, in the order given."""

    def cells(row: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    rule = ["---:" if h in _MD_RIGHT else "---" for h in MD_HEADER]
    lines = [cells(MD_HEADER), "| " + " | ".join(rule) + " |"]
    lines += [cells(md_row(j)) for j in jobs]
    return "\n".join(lines) + "\n"


def render_csv(jobs: list[Job]) -> str:
    """The jobs as CSV with a header row, in the order given."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for job in jobs:
        writer.writerow(csv_row(job))
    return buffer.getvalue()
