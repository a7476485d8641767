"""Telling jobs apart: each job's label is its values of the keys that differ between jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parrot_lm.report.events import load_yaml
from parrot_lm.report.jobs import Job
from parrot_lm.runs.resume import override_key
from parrot_lm.runs.run_dir import RunDir

_MISSING = object()


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
        run = RunDir(job_dir)
        cfg = load_yaml(run.run_config) if run.run_config.is_file() else None
        hydra = load_yaml(run.hydra_settings) if run.hydra_settings.is_file() else None
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


def label_jobs(jobs: list[Job]) -> list[str]:
    """Set each job's label to its overrides of the keys that differ between the jobs (all of
    its overrides when there is one job); returns those keys.

    A key one job overrides and another does not is compared with the other's run config, so
    comparing sweeps with different override sets (or a resumed job, whose .hydra holds the
    resume command) still shows what tells the runs apart.
    """
    if len(jobs) == 1:
        jobs[0].label = " ".join(jobs[0].overrides)
        jobs[0].label_parts = {
            override_key(o): o.split("=", 1)[1] if "=" in o else "" for o in jobs[0].overrides
        }
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
        job.label_parts = dict(shown[i])
    return differing
