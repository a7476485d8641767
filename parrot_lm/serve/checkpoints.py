"""The checkpoints under an outputs dir, each with what a user picks by: run, step, val loss.

A checkpoint's id is its path relative to the outputs dir (`runs/<date>/<time>/checkpoints/
last.ckpt`): stable, readable, and never a path outside that dir. Metadata is read with
`weights_only=True` and memory-mapped tensors, so listing a dir of large checkpoints stays
cheap, and is cached until the file changes (a training run rewrites `last.ckpt`).

Val loss comes from the first of: the ModelCheckpoint callback's score when it monitors
`val/loss`; the run's TensorBoard events or CSV log (`val/loss` at the checkpoint's step, else
the latest before it); `scripts/evaluate.py`'s result on the val split for this checkpoint.

The default checkpoint (the page's first choice, first in GET /v1/models) is the one with the
lowest val loss; ties and a list without val losses go to the newest file. A checkpoint of a
run marked FAILED (training raised, runs/run_dir.py mark_failed) is listed, flagged `failed`,
and never the default.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from parrot_lm.core.errors import CheckpointError
from parrot_lm.runs.checkpoints import load_checkpoint
from parrot_lm.runs.loading import find_tokenizer_dir, latest_checkpoint, run_named
from parrot_lm.runs.run_dir import LATEST, RunDir

log = logging.getLogger(__name__)

VAL_LOSS_TAGS = ("val/loss", "val_loss", "val/loss_partial")


@dataclass(frozen=True)
class CheckpointInfo:
    """One *.ckpt file as the chat page and GET /v1/models show it."""

    id: str  # path relative to the outputs dir, POSIX separators
    path: Path
    run: str  # the run dir relative to the outputs dir ("." for a file directly in it)
    name: str  # the file name
    modified: float  # mtime, seconds since the epoch
    size: int
    step: int | None = None
    val_loss: float | None = None
    val_loss_step: int | None = None  # the step that val loss was measured at
    val_loss_source: str | None = None  # checkpoint | tensorboard | csv | evaluate
    model: dict[str, Any] = field(default_factory=dict)  # context, width, depth, vocab
    error: str | None = None  # why the file cannot be used (corrupt, foreign, no tokenizer)
    failed: bool = False  # its run is marked FAILED (read on each scan, never cached)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return data


def _callback_val_loss(ckpt: dict[str, Any]) -> float | None:
    """The score ModelCheckpoint saved with this file, when it monitors the val loss."""
    for key, state in (ckpt.get("callbacks") or {}).items():
        if "ModelCheckpoint" not in str(key) or not isinstance(state, dict):
            continue
        score = state.get("current_score")
        if state.get("monitor") in VAL_LOSS_TAGS and score is not None:
            value = float(score)
            if math.isfinite(value):
                return value
    return None


def default_checkpoint(found: list[CheckpointInfo]) -> CheckpointInfo | None:
    """The checkpoint a user gets unless they pick one: of the usable ones of runs that did not
    fail, the lowest val loss; equal or unknown val losses go to the newest file."""
    usable = [info for info in found if info.error is None and not info.failed]
    if not usable:
        return None
    scored = [info for info in usable if info.val_loss is not None]
    if not scored:
        return max(usable, key=lambda i: i.modified)
    return min(scored, key=lambda i: (i.val_loss, -i.modified))


def _at_or_before(points: dict[int, float], step: int | None) -> tuple[int, float] | None:
    """The value at `step`, else the latest one before it (None: no step known -> the last)."""
    eligible = [s for s in points if step is None or s <= step]
    if not eligible:
        return None
    best = max(eligible)
    return best, points[best]


class CheckpointCatalog:
    """Finds and describes the checkpoints under `outputs_dir`; thread-safe, cached."""

    def __init__(self, outputs_dir: str | Path) -> None:
        self.outputs_dir = Path(outputs_dir).expanduser().resolve()
        self._lock = threading.Lock()
        self._meta: dict[Path, tuple[tuple[int, int], CheckpointInfo]] = {}
        self._curves: dict[Path, tuple[tuple, dict[str, dict[int, float]]]] = {}

    # -- finding ---------------------------------------------------------------------------
    def scan(self) -> list[CheckpointInfo]:
        """Every *.ckpt under the outputs dir (hidden dirs and temporaries skipped), newest
        first."""
        if not self.outputs_dir.is_dir():
            return []
        found = []
        for path in self.outputs_dir.rglob("*.ckpt"):
            rel = path.relative_to(self.outputs_dir)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            info = self.describe(path)
            if info is not None:
                found.append(self._with_status(info))
        with self._lock:  # forget files that are gone
            live = {info.path for info in found}
            for stale in [p for p in self._meta if p not in live]:
                del self._meta[stale]
        return sorted(found, key=lambda i: (-i.modified, i.id))

    def get(self, checkpoint_id: str) -> CheckpointInfo | None:
        """The checkpoint with this id, or None; ids that leave the outputs dir are None."""
        rel = PurePosixPath(checkpoint_id)
        if (
            not checkpoint_id
            or rel.is_absolute()
            or rel.suffix != ".ckpt"
            or any(part in ("", "..") or part.startswith(".") for part in rel.parts)
        ):
            return None
        path = self.outputs_dir.joinpath(*rel.parts)
        try:
            if not path.resolve().is_relative_to(self.outputs_dir):  # a symlink out
                return None
        except OSError:
            return None
        info = self.describe(path) if path.is_file() else None
        return None if info is None else self._with_status(info)

    def by_run(self, name: str) -> CheckpointInfo | None:
        """The checkpoint `ckpt=<name>` picks in the scripts: `latest`, or the run
        `runs/<name>` (or `multiruns/<name>`) under the outputs dir (runs/loading.py); None
        when it names none, or a file outside the outputs dir."""
        try:
            if name == LATEST:
                path = latest_checkpoint(self.outputs_dir)
            else:
                run = run_named(self.outputs_dir, name)
                path = RunDir(run).resolve_checkpoint() if run is not None else None
        except CheckpointError:
            return None
        if path is None:
            return None
        return self.get(path.relative_to(self.outputs_dir).as_posix())

    def _with_status(self, info: CheckpointInfo) -> CheckpointInfo:
        """`info` with its run's FAILED marker as it is now (a run can fail after the file)."""
        failed = RunDir.of_checkpoint(info.path).is_failed()
        return info if failed == info.failed else replace(info, failed=failed)

    # -- describing ------------------------------------------------------------------------
    def describe(self, path: Path) -> CheckpointInfo | None:
        """Metadata of one file (cached while its mtime and size stay the same)."""
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._meta.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        info = self._read(path, stat.st_mtime, stat.st_size)
        with self._lock:
            self._meta[path] = (key, info)
        return info

    def _read(self, path: Path, modified: float, size: int) -> CheckpointInfo:
        rel = path.relative_to(self.outputs_dir)
        run = RunDir.of_checkpoint(path).path
        if not run.is_relative_to(self.outputs_dir):  # outputs_dir is itself a checkpoints dir
            run = path.parent
        base = {
            "id": rel.as_posix(),
            "path": path,
            "run": run.relative_to(self.outputs_dir).as_posix(),
            "name": path.name,
            "modified": modified,
            "size": size,
        }
        try:
            ckpt = load_checkpoint(path, mmap=True)
        except CheckpointError as e:
            return CheckpointInfo(**base, error=str(e))
        step = int(ckpt["global_step"]) if "global_step" in ckpt else None
        model_cfg = ckpt["hyper_parameters"]["model"]
        model = {
            k: model_cfg.get(k) for k in ("context_length", "d_model", "n_layers", "vocab_size")
        }
        try:  # without its tokenizer a checkpoint cannot talk: say so in the list already
            find_tokenizer_dir(path)
        except CheckpointError as e:
            return CheckpointInfo(**base, step=step, model=model, error=str(e))
        score = _callback_val_loss(ckpt)
        if score is not None:
            val = (step, score, "checkpoint")
        else:
            val = self._logged_val_loss(run, step) or self._evaluated_val_loss(path, step)
        del ckpt
        if val is None:
            return CheckpointInfo(**base, step=step, model=model)
        return CheckpointInfo(
            **base,
            step=step,
            model=model,
            val_loss=val[1],
            val_loss_step=val[0],
            val_loss_source=val[2],
        )

    def _logged_val_loss(self, run: Path, step: int | None) -> tuple[int, float, str] | None:
        curves = self._run_curves(run)
        for source in ("tensorboard", "csv"):
            found = _at_or_before(curves.get(source, {}), step)
            if found is not None:
                return found[0], found[1], source
        return None

    def _run_curves(self, run: Path) -> dict[str, dict[int, float]]:
        """{"tensorboard": {step: val loss}, "csv": {...}} of a run dir, cached per file state."""
        tb_files = sorted(RunDir(run).tensorboard.rglob("events.out.tfevents.*"))
        csv_files = sorted(RunDir(run).csv.rglob("metrics.csv"))
        try:
            key = tuple(
                (str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in tb_files + csv_files
            )
        except OSError:
            key = ()
        with self._lock:
            cached = self._curves.get(run)
        if cached is not None and cached[0] == key:
            return cached[1]
        curves: dict[str, dict[int, float]] = {}
        if tb_files:
            curves["tensorboard"] = _tensorboard_val_loss(run)
        for path in csv_files:
            curves.setdefault("csv", {}).update(_csv_val_loss(path))
        with self._lock:
            self._curves[run] = (key, curves)
        return curves

    def _evaluated_val_loss(self, path: Path, step: int | None) -> tuple[int, float, str] | None:
        """scripts/evaluate.py's result for this checkpoint on its val split."""
        for result in RunDir.of_checkpoint(path).eval_results(path, "val"):
            try:
                data = json.loads(result.read_text())
                loss, at = float(data["loss"]), int(data.get("step", step or 0))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if (step is None or at == step) and math.isfinite(loss):
                return at, loss, "evaluate"
        return None


def _tensorboard_val_loss(run: Path) -> dict[int, float]:
    from parrot_lm.report.events import read_scalars

    try:
        scalars, _, _ = read_scalars(run)
    except Exception as e:  # a half-written or foreign events file: no val loss, no failure
        log.warning("Could not read the TensorBoard events of %s (%s).", run, e)
        return {}
    for tag in VAL_LOSS_TAGS:
        if tag in scalars:
            series = scalars[tag]
            return {
                s: v for s, v in zip(series.steps, series.values, strict=True) if math.isfinite(v)
            }
    return {}


def _csv_val_loss(path: Path) -> dict[int, float]:
    """Lightning's CSVLogger metrics.csv: a `step` column and a `val/loss` column."""
    points: dict[int, float] = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                for tag in VAL_LOSS_TAGS:
                    value = row.get(tag)
                    if value not in (None, "") and row.get("step") not in (None, ""):
                        loss = float(value)
                        if math.isfinite(loss):
                            points[int(float(row["step"]))] = loss
    except (OSError, ValueError) as e:
        log.warning("Could not read %s (%s).", path, e)
    return points
