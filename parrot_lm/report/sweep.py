"""Sweep report: one row per run (job) of one or more sweeps, read from TensorBoard events.

`python scripts/report.py outputs/multiruns/<date>/<time> [more dirs or globs] [--out DIR]`
writes report.md, report.csv and val_loss.png (val/loss per job) and prints the table.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parrot_lm.core.errors import ReportError
from parrot_lm.runs.resume import override_key
from parrot_lm.runs.run_dir import RUN_CONFIG

REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
VAL_LOSS_PNG = "val_loss.png"
OVERRIDES = Path(".hydra") / "overrides.yaml"
TENSORBOARD = "tensorboard"
# Where a run lives, not what it is: never a column of the report.
IGNORED_OVERRIDE_KEYS = ("resume", "paths", "hydra")

CSV_COLUMNS = [
    "job",
    "status",
    "overrides",
    "final_val_loss",
    "final_val_ppl",
    "best_val_loss",
    "best_step",
    "steps",
    "tokens",
    "wall_time_s",
    "tokens_per_sec",
    "dir",
]
MD_HEADER = [
    "job",
    "status",
    "overrides",
    "final val loss",
    "final val ppl",
    "best val loss",
    "best step",
    "steps",
    "tokens",
    "wall time",
    "tokens/s",
]


@dataclass
class Series:
    """One scalar tag: steps ascending, one value per step (the latest written wins)."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None


@dataclass
class Job:
    path: Path
    name: str = ""
    overrides: list[str] = field(default_factory=list)
    scalars: dict[str, Series] = field(default_factory=dict)
    first_wall_time: float | None = None
    last_wall_time: float | None = None
    max_steps: int | None = None
    ckpt_step: int | None = None
    label: str = ""  # the overrides that tell this job apart from the others

    # -- derived values ----------------------------------------------------------------------
    @property
    def val(self) -> Series:
        return self.scalars.get("val/loss", Series())

    @property
    def final_val_loss(self) -> float | None:
        return self.val.last

    @property
    def final_val_ppl(self) -> float | None:
        loss = self.final_val_loss
        return _exp(loss) if loss is not None else None

    @property
    def best(self) -> tuple[float, int] | tuple[None, None]:
        pairs = [
            (v, s) for s, v in zip(self.val.steps, self.val.values, strict=True) if math.isfinite(v)
        ]
        return min(pairs) if pairs else (None, None)

    @property
    def steps(self) -> int | None:
        """The run's last step: its last checkpoint's global step, or its last event's step."""
        event_steps = [s.steps[-1] for s in self.scalars.values() if s.steps]
        candidates = [x for x in (self.ckpt_step, max(event_steps, default=None)) if x is not None]
        return max(candidates) if candidates else None

    @property
    def tokens(self) -> int | None:
        last = self.scalars.get("train/tokens", Series()).last
        return int(last) if last is not None else None

    @property
    def wall_time(self) -> float | None:
        if self.first_wall_time is None or self.last_wall_time is None:
            return None
        return self.last_wall_time - self.first_wall_time

    @property
    def tokens_per_sec(self) -> float | None:
        values = [v for v in self.scalars.get("train/tokens_per_sec", Series()).values]
        values = [v for v in values if math.isfinite(v)]
        return sum(values) / len(values) if values else None

    @property
    def status(self) -> str:
        """done: last.ckpt is at trainer.max_steps (or beyond); failed: no events and not done;
        incomplete otherwise (crashed, stopped, or still running)."""
        finished = (
            self.ckpt_step is not None
            and self.max_steps is not None
            and self.ckpt_step >= self.max_steps
        )
        if finished:
            return "done"
        return "incomplete" if self.scalars else "failed"


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


# -- finding runs -------------------------------------------------------------------------------
def is_job_dir(path: Path) -> bool:
    return (
        (path / OVERRIDES).is_file()
        or (path / RUN_CONFIG).is_file()
        or (path / TENSORBOARD).is_dir()
    )


def expand_inputs(args: Iterable[str]) -> list[Path]:
    """Each argument as given, or the directories its glob pattern matches (sorted)."""
    paths: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.exists():
            if not path.is_dir():
                raise ReportError(
                    f"{arg} is a file; give a run dir (outputs/runs/<date>/<time>) or a sweep dir "
                    "(outputs/multiruns/<date>/<time>)."
                )
            paths.append(path)
        elif glob.has_magic(arg):
            matches = sorted(Path(p) for p in glob.glob(arg) if Path(p).is_dir())
            if not matches:
                raise ReportError(f"No directory matches {arg}; check the pattern.")
            paths.extend(matches)
        else:
            raise ReportError(
                f"{arg} does not exist; give a run dir (outputs/runs/<date>/<time>) or a sweep "
                "dir (outputs/multiruns/<date>/<time>)."
            )
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _natural_key(text: str) -> list[Any]:
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)
    ]


def find_job_dirs(root: Path) -> list[Path]:
    """`root` itself if it is a run dir, else every run dir below it (not below a run dir)."""
    if is_job_dir(root):
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if here != root and is_job_dir(here):
            found.append(here)
            dirnames.clear()
            continue
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=_natural_key)
    return sorted(found, key=lambda p: _natural_key(str(p.relative_to(root))))


def discover(inputs: Sequence[Path]) -> list[Job]:
    """Every job under the inputs, each named by its path below the input (the sweep's subdir
    number for a multirun), prefixed by the input's name when several inputs are compared."""
    jobs: list[Job] = []
    seen: set[Path] = set()
    for root in inputs:
        dirs = find_job_dirs(root)
        if not dirs:
            raise ReportError(
                f"{root} holds no run dirs (none with .hydra/overrides.yaml, run_config.yaml or "
                "tensorboard/); give a run dir or a sweep dir from outputs/."
            )
        for path in dirs:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            rel = path.relative_to(root).as_posix()
            root_name = root.resolve().name
            name = root_name if rel == "." else rel
            if len(inputs) > 1 and rel != ".":
                name = f"{root_name}/{rel}"
            jobs.append(Job(path=path, name=name))
    names = [j.name for j in jobs]
    if len(set(names)) < len(names):  # the same dir name under two inputs: use whole paths
        for job in jobs:
            job.name = job.path.as_posix()
    return jobs


# -- reading one job ----------------------------------------------------------------------------
def _load_yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # unreadable config: the row still shows the metrics
        print(f"warning: cannot read {path} ({type(e).__name__}); ignoring it.", file=sys.stderr)
        return None


def read_overrides(job_dir: Path) -> list[str]:
    path = job_dir / OVERRIDES
    if not path.is_file():
        return []
    loaded = _load_yaml(path)
    if not isinstance(loaded, list):
        return []
    return [
        str(o) for o in loaded if override_key(str(o)).split(".")[0] not in IGNORED_OVERRIDE_KEYS
    ]


def read_max_steps(job_dir: Path) -> int | None:
    for path in (job_dir / RUN_CONFIG, job_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            cfg = _load_yaml(path)
            try:
                return int(cfg["trainer"]["max_steps"])
            except (TypeError, KeyError, ValueError):
                continue
    return None


def read_ckpt_step(job_dir: Path) -> int | None:
    """global_step of checkpoints/last.ckpt (memory-mapped: the weights are not read)."""
    path = job_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        return None
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["global_step"])
    except Exception as e:  # truncated or foreign: the run is not done
        print(f"warning: cannot read {path} ({type(e).__name__}); ignoring it.", file=sys.stderr)
        return None


def event_dirs(job_dir: Path) -> list[Path]:
    """Dirs holding events files: <job>/tensorboard (and any version subdir), else the job dir."""
    tb = job_dir / TENSORBOARD
    roots = [tb] if tb.is_dir() else [job_dir]
    found = set()
    for root in roots:
        for events in root.rglob("events.out.tfevents.*"):
            found.add(events.parent)
    return sorted(found)


def _accumulate(directory: Path, points: dict[str, dict[int, tuple[float, float]]]) -> None:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(
        str(directory),
        size_guidance={
            ea.SCALARS: 0,  # keep every scalar
            ea.TENSORS: 1,
            ea.IMAGES: 1,
            ea.AUDIO: 1,
            ea.HISTOGRAMS: 1,
            ea.COMPRESSED_HISTOGRAMS: 1,
        },
    )
    acc.Reload()
    for tag in acc.Tags().get("scalars", []):
        by_step = points.setdefault(tag, {})
        for event in acc.Scalars(tag):  # in file order (file names start with the time)
            by_step[event.step] = (event.wall_time, float(event.value))  # a later write wins


def read_scalars(job_dir: Path) -> tuple[dict[str, Series], float | None, float | None]:
    """All scalars of a run, one value per step (later events for a step win: a resumed run
    rewrites the steps after its checkpoint), and the first and last event wall times."""
    points: dict[str, dict[int, tuple[float, float]]] = {}
    # A resumed run's "out of order event.step ... purging" notice is expected here: quiet it.
    tb_log = logging.getLogger("tensorboard")
    level = tb_log.level
    tb_log.setLevel(logging.ERROR)
    try:
        for directory in event_dirs(job_dir):
            _accumulate(directory, points)
    finally:
        tb_log.setLevel(level)
    scalars: dict[str, Series] = {}
    walls: list[float] = []
    for tag, by_step in points.items():
        steps = sorted(by_step)
        scalars[tag] = Series(steps, [by_step[s][1] for s in steps])
        walls.extend(w for w, _ in by_step.values())
    return scalars, (min(walls) if walls else None), (max(walls) if walls else None)


def load_job(job: Job) -> Job:
    job.overrides = read_overrides(job.path)
    job.scalars, job.first_wall_time, job.last_wall_time = read_scalars(job.path)
    job.max_steps = read_max_steps(job.path)
    job.ckpt_step = read_ckpt_step(job.path)
    return job


# -- telling jobs apart -------------------------------------------------------------------------
def _normalise(value: Any) -> Any:
    """A value to compare: "1e-3" and 0.001 are equal, and so are "true" and True."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().strip("'\"")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() in ("null", "none", "~"):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _config_value(job_dir: Path, key: str, cache: dict[Path, tuple[Any, Any]]) -> Any:
    """A key's value in a job's run config (or, for a config group, the option Hydra chose)."""
    if job_dir not in cache:
        cfg = _load_yaml(job_dir / RUN_CONFIG) if (job_dir / RUN_CONFIG).is_file() else None
        hydra = (
            _load_yaml(job_dir / ".hydra" / "hydra.yaml")
            if (job_dir / ".hydra" / "hydra.yaml").is_file()
            else None
        )
        choices = {}
        if isinstance(hydra, dict):
            choices = (hydra.get("hydra", {}) or {}).get("runtime", {}).get("choices", {}) or {}
        cache[job_dir] = (cfg, choices)
    cfg, choices = cache[job_dir]
    if key in choices:
        return choices[key]
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return _MISSING if isinstance(node, (dict, list)) else node


_MISSING = object()


def label_jobs(jobs: list[Job]) -> list[str]:
    """Set each job's label to its overrides of the keys that differ between the jobs (all of
    its overrides when there is one job); returns those keys.

    A key one job overrides and another does not is compared with the other's run config, so
    comparing sweeps with different override sets (or a resumed job, whose .hydra holds the
    resume command) still shows what tells the runs apart.
    """
    if len(jobs) == 1:
        jobs[0].label = " ".join(jobs[0].overrides)
        return [override_key(o) for o in jobs[0].overrides]
    given = [
        {override_key(o): o.split("=", 1)[1] if "=" in o else None for o in j.overrides}
        for j in jobs
    ]
    keys = list(dict.fromkeys(k for g in given for k in g))
    cache: dict[Path, tuple[Any, Any]] = {}
    shown: dict[int, dict[str, str]] = {i: {} for i in range(len(jobs))}
    differing = []
    for key in keys:
        values = []
        for i, job in enumerate(jobs):
            if key in given[i]:
                text = given[i][key]
            else:
                value = _config_value(job.path, key, cache)
                text = None if value is _MISSING else ("null" if value is None else str(value))
            values.append(text)
        if len({repr(_normalise(v)) if v is not None else "<absent>" for v in values}) > 1:
            differing.append(key)
            for i, text in enumerate(values):
                if text is not None:
                    shown[i][key] = text
    for i, job in enumerate(jobs):
        job.label = " ".join(f"{k}={v}" for k, v in shown[i].items())
    return differing


# -- the table ----------------------------------------------------------------------------------
def sort_jobs(jobs: list[Job]) -> list[Job]:
    """Best val loss first; jobs without one last, in their discovery order."""
    order = {id(j): i for i, j in enumerate(jobs)}
    return sorted(
        jobs,
        key=lambda j: (
            j.best[0] is None,
            j.best[0] if j.best[0] is not None else 0.0,
            order[id(j)],
        ),
    )


def format_duration(seconds: float | None) -> str:
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
    def cells(row: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    right = {
        "final val loss",
        "final val ppl",
        "best val loss",
        "best step",
        "steps",
        "tokens",
        "wall time",
        "tokens/s",
    }
    rule = ["---:" if h in right else "---" for h in MD_HEADER]
    lines = [cells(MD_HEADER), "| " + " | ".join(rule) + " |"]
    lines += [cells(md_row(j)) for j in jobs]
    return "\n".join(lines) + "\n"


def render_csv(jobs: list[Job]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for job in jobs:
        writer.writerow(csv_row(job))
    return buffer.getvalue()


# -- the plot -----------------------------------------------------------------------------------
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


def plot_val_loss(jobs: list[Job], title: str, x: str = "step", logy: bool = False):
    """A matplotlib Figure (Agg, no pyplot state) with one val/loss line per job."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = [j.label or j.name for j in jobs]
    if len(set(labels)) < len(labels):
        labels = [f"{j.name}: {j.label}" if j.label else j.name for j in jobs]
    for job, label in zip(jobs, labels, strict=True):
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


def figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# -- the whole report ---------------------------------------------------------------------------
@dataclass
class Report:
    jobs: list[Job]
    markdown: str
    csv: str
    figure: Any
    out_dir: Path

    @property
    def paths(self) -> list[Path]:
        return [self.out_dir / REPORT_MD, self.out_dir / REPORT_CSV, self.out_dir / VAL_LOSS_PNG]


def sweep_title(inputs: Sequence[Path]) -> str:
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
    """All three files, each written to a temporary file first and renamed into place."""
    from parrot_lm.core.io import atomic_write_bytes

    payloads = [report.markdown.encode(), report.csv.encode(), figure_png(report.figure)]
    report.out_dir.mkdir(parents=True, exist_ok=True)
    for path, data in zip(report.paths, payloads, strict=True):
        atomic_write_bytes(path, data)
    return report.paths


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="scripts/report.py",
        description="Table and val/loss plot of the runs of one or more sweeps (or single runs).",
    )
    parser.add_argument(
        "dirs", nargs="+", metavar="DIR", help="sweep dir, run dir, or a glob of them"
    )
    parser.add_argument(
        "--out", help="where to write report.md/.csv and val_loss.png (default: the first DIR)"
    )
    parser.add_argument(
        "--x", choices=("step", "tokens"), default="step", help="x axis of the plot"
    )
    parser.add_argument("--logy", action="store_true", help="log-scale the loss axis")
    ns = parser.parse_args(argv)
    report = build_report(ns.dirs, ns.out, x=ns.x, logy=ns.logy)
    written = write_report(report)
    sys.stdout.write(report.markdown)
    sys.stdout.flush()
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
