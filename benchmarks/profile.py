"""Op-by-op profile of one training step: ParrotLM's LLaMA model and the GPT-2-style reference.

python -m benchmarks.profile                      # tiny, 5 profiled steps
python -m benchmarks.profile --model deep_narrow --steps 2 --top 20

Both models run the bare loop of benchmarks/per_flop.py (forward, loss, backward, clipping,
AdamW) on the CPU in fp32; torch.profiler's self time per op is printed per step, with calls
per step, so an op that costs more than its FLOPs shows up by name. Writes the tables to
outputs/bench/profile-<model>.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.per_flop import gpt2_model, llama_model, model_flops_per_token, training_step
from benchmarks.train import OPTIM, TRAIN_MODELS

ROOT = Path(__file__).resolve().parents[1]


def op_profile(
    shape: dict[str, Any], batch_size: int, reference: bool, steps: int, warmup: int = 3
) -> list[dict]:
    """Ops of `steps` profiled training steps, most self time first: name, ms per step, calls
    per step. reference: the GPT-2-style model instead of the LLaMA one."""
    torch.manual_seed(0)
    model = (gpt2_model if reference else llama_model)(shape)
    step = training_step(model, batch_size, OPTIM)
    for _ in range(warmup):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    ops = [
        {
            "op": event.key,
            "ms_per_step": event.self_cpu_time_total / 1e3 / steps,
            "calls_per_step": event.count / steps,
        }
        for event in prof.key_averages()
        if event.self_cpu_time_total > 0
    ]
    return sorted(ops, key=lambda op: -op["ms_per_step"])


def profile_table(ops: list[dict], top: int) -> str:
    """A markdown table of the `top` ops, with each one's share of the profiled step time."""
    total = sum(op["ms_per_step"] for op in ops)
    lines = ["| op | ms / step | share | calls / step |", "|---|---|---|---|"]
    for op in ops[:top]:
        share = op["ms_per_step"] / total
        lines.append(
            f"| {op['op']} | {op['ms_per_step']:.2f} | {share:.1%} | {op['calls_per_step']:g} |"
        )
    lines.append(f"| all ops | {total:.2f} | 100% | |")
    return "\n".join(lines)


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TRAIN_MODELS), default="tiny")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (after 3 warm-up)")
    parser.add_argument("--top", type=int, default=15, help="ops listed per model")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench")
    args = parser.parse_args(argv)
    shape, batch_size = TRAIN_MODELS[args.model]
    sections = []
    for reference in (False, True):
        torch.manual_seed(0)
        label = "GPT-2-style reference" if reference else "ParrotLM (LLaMA recipe)"
        flops = model_flops_per_token((gpt2_model if reference else llama_model)(shape))
        ops = op_profile(shape, batch_size, reference, args.steps)
        sections.append(
            f"### {args.model}, {label}: batch {batch_size} x {shape['context_length']}, "
            f"{flops / 1e6:.2f} MFLOP per token\n\n{profile_table(ops, args.top)}"
        )
    text = "\n\n".join(sections)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"profile-{args.model}.md").write_text(text + "\n")
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
