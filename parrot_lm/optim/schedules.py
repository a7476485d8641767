"""Learning-rate schedules as multipliers of the peak lr, stepped once per optimizer step."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Linear warmup from ~0 to 1 over warmup_steps, then cosine down to min_lr_ratio at
    total_steps (the schedule of nanoGPT and the LLaMA papers).

    The schedule is fixed when a run starts (`optim.schedule_steps`). A run extended past it
    (resume with a larger trainer.max_steps) keeps the multiplier of step total_steps: the floor
    when the cosine finished, and that step's warmup value when the warmup was longer than the
    schedule (the LR never rises past the old end).
    """
    step = min(step, total_steps)  # past the schedule: the value at its end
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    progress = 1.0 if decay_steps <= 0 else min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
