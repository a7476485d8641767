"""A job (one run of a sweep, or a single run) and what the report derives from its events."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from parrot_lm.runs.run_dir import RunDir


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
    """One run dir of the report: where it is, its name and label, and what was read from it."""

    path: Path
    name: str = ""
    overrides: list[str] = field(default_factory=list)
    scalars: dict[str, Series] = field(default_factory=dict)
    first_wall_time: float | None = None
    last_wall_time: float | None = None
    max_steps: int | None = None
    ckpt_step: int | None = None
    ckpt_tokens: int | None = None
    label: str = ""  # the overrides that tell this job apart from the others
    # The label as key -> value, so the seed report can drop the seed key without re-parsing.
    label_parts: dict[str, str] = field(default_factory=dict)

    # -- derived values ----------------------------------------------------------------------
    @property
    def val(self) -> Series:
        """`val/loss` (the whole val split), or `val/loss_partial` for a run that limited its
        validation batches (`partial_val` says which)."""
        return self.scalars.get("val/loss") or self.scalars.get("val/loss_partial", Series())

    @property
    def partial_val(self) -> bool:
        return "val/loss" not in self.scalars and "val/loss_partial" in self.scalars

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
        """Training tokens of the run: its last checkpoint's count (what the weights have
        seen), else the last logged `train/tokens`."""
        if self.ckpt_tokens is not None:
            return self.ckpt_tokens
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
        """failed: training raised (the run's FAILED marker), or no events and not done; done:
        last.ckpt is at trainer.max_steps (or beyond); incomplete otherwise (stopped, still
        running, or crashed without a marker: killed)."""
        if RunDir(self.path).is_failed():
            return "failed"
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
