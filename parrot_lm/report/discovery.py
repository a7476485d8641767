"""Finding the run dirs (jobs) under the report's inputs: dirs as given, or globs of them."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from parrot_lm.core.errors import ReportError
from parrot_lm.report.jobs import Job
from parrot_lm.runs.run_dir import RunDir

_LAYOUT = RunDir(".")  # the run-dir layout's relative paths, for messages


def is_job_dir(path: Path) -> bool:
    """Whether `path` is a run (or sweep job) dir (see `RunDir.is_run`)."""
    return RunDir(path).is_run()


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
                f"{root} holds no run dirs (none with {_LAYOUT.overrides.as_posix()}, "
                f"{_LAYOUT.run_config.as_posix()} or {_LAYOUT.tensorboard.as_posix()}/); give a "
                "run dir or a sweep dir from outputs/."
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
