"""Speed per FLOP: ParrotLM's LLaMA block against a GPT-2-style block of the same size.

The reference is built from ParrotLM's own switches (`norm=layernorm`, `pos_encoding=learned`)
with a bench-only GELU MLP at 4x width (GPT-2, as nanoGPT writes it: exact GELU, no biases in
the linear layers), so both models share the embedding, attention, head, loss, optimizer and
loop, and differ only where the recipes do: RMSNorm/LayerNorm, RoPE/learned positions,
SwiGLU/GELU. Each model's FLOPs per token are counted from its own linear layers (6N plus
attention, PaLM appendix B), so the ratio of achieved FLOP/s says which block does more useful
work per second, whatever their small differences in size.

python -m benchmarks.per_flop --model tiny              # the paired ratio alone (make bench has it)
python -m benchmarks.per_flop --model tiny --compile    # both models under torch.compile
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks import alternate
from benchmarks.train import OPTIM, TRAIN_MODELS, bare_step, in_fresh_process
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.optim import build_optimizer
from parrot_lm.training.speed import apply_speed_settings


class GeluMLP(nn.Module):
    """GPT-2's feed-forward: d_model -> 4 d_model -> d_model with GELU (bench-only)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model, bias=False)
        self.proj = nn.Linear(4 * d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))  # (B, T, d_model)


def llama_model(shape: dict[str, Any]) -> GPT:
    """ParrotLM's default recipe at this shape."""
    return GPT(GPTConfig(**shape))


def gpt2_model(shape: dict[str, Any]) -> GPT:
    """The GPT-2-style reference at this shape: LayerNorm, learned positions, GELU MLP 4x.
    `d_ff` of the shape is ignored: the MLP is 4 d_model wide, as in GPT-2."""
    model = GPT(GPTConfig(**shape, norm="layernorm", pos_encoding="learned"))
    std, residual_std = model.cfg.init_std, model.cfg.init_std / (2 * model.cfg.n_layers) ** 0.5
    for block in model.blocks:
        block.mlp = GeluMLP(model.cfg.d_model)
        nn.init.normal_(block.mlp.fc.weight, std=std)
        nn.init.normal_(block.mlp.proj.weight, std=residual_std)
    return model


def model_flops_per_token(model: GPT) -> float:
    """Training FLOPs per token of any GPT here: 6 x the weights of its linear layers (the tied
    head counted once, the embedding lookup not at all) + 6 n_layers T d_model for attention
    (PaLM, appendix B). Equals `parrot_lm.training.flops.flops_per_token` on the default
    recipe (tests check it)."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    cfg = model.cfg
    return 6.0 * linear + 6.0 * cfg.n_layers * cfg.context_length * cfg.d_model


def training_step(
    model: GPT, batch_size: int, optim: dict[str, Any], speed: dict[str, Any] | None = None
) -> Callable[[], None]:
    """One optimizer step of the bare loop (forward, loss, backward, clip, AdamW), on fixed
    random tokens: both models see the same work, and data loading is measured elsewhere.
    speed: `speed.*` settings (default: train.py's, on the CPU)."""
    cfg = model.cfg
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(
        0, cfg.vocab_size, (batch_size, cfg.context_length + 1), generator=generator
    )
    x, y = tokens[:, :-1], tokens[:, 1:]
    model.train()
    apply_speed_settings(speed or {}, model)  # train.py's CPU defaults: the allocator, no compile
    optimizer = build_optimizer(model, optim)

    def step() -> None:
        bare_step(model, optimizer, x, y, optim["grad_clip"]).item()

    return step


def per_flop_ratio(
    shape: dict[str, Any],
    batch_size: int,
    optim: dict[str, Any],
    pairs: int = 8,
    steps: int = 5,
    warmup: int = 2,
    compile: bool = False,
) -> dict[str, Any]:
    """Achieved FLOP/s of the LLaMA model / that of the GPT-2-style one, on the CPU, fp32.

    Both models live in one process and alternate in blocks of `steps` optimizer steps (the
    order flips every pair), so a drift in machine speed hits both alike; each pair gives one
    ratio of the blocks' median step times, weighted by FLOPs per token. Returns the tokens/s
    and FLOP/s of each (medians), the ratio per pair and their median.
    """
    torch.manual_seed(0)
    models = {"llama": llama_model(shape), "gpt2": gpt2_model(shape)}
    if compile:  # in place, as train.py's speed.compile does
        for model in models.values():
            model.compile()
    steps_of = {name: training_step(m, batch_size, optim) for name, m in models.items()}
    flops = {name: model_flops_per_token(m) for name, m in models.items()}
    tokens_per_step = batch_size * shape["context_length"]
    for step in steps_of.values():
        for _ in range(warmup):
            step()
    rates = alternate(steps_of, tokens_per_step, pairs, steps)
    ratios = [
        llama * flops["llama"] / (gpt2 * flops["gpt2"])
        for llama, gpt2 in zip(rates["llama"], rates["gpt2"], strict=True)
    ]
    result: dict[str, Any] = {"batch": [batch_size, shape["context_length"]]}
    for name in models:
        result[f"{name}_tokens_per_s"] = statistics.median(rates[name])
        result[f"{name}_flops_per_token"] = flops[name]
        result[f"{name}_achieved_flops"] = statistics.median(rates[name]) * flops[name]
    result["ratios"] = ratios
    result["ratio_llama_vs_gpt2"] = statistics.median(ratios)
    return result


def compile_payoff(
    shape: dict[str, Any],
    batch_size: int,
    optim: dict[str, Any],
    pairs: int = 4,
    steps: int = 5,
    warmup: int = 3,
) -> dict[str, Any]:
    """What torch.compile buys the LLaMA model's training step on this machine, from a cold
    compile cache: the compiled / eager tokens/s pair by pair, the warm-up (seconds of the
    first `warmup` compiled steps beyond what they would take compiled), and the break-even
    step count (warm-up / seconds saved per step; None if compiled is not faster).

    Sets TORCHINDUCTOR_CACHE_DIR to a fresh temporary folder: run it in a fresh process.
    """
    import os
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="parrot-inductor-")
    torch.manual_seed(0)
    eager, compiled = llama_model(shape), llama_model(shape)
    compiled.compile()  # in place, as speed.compile does
    steps_of = {"eager": training_step(eager, batch_size, optim)}
    steps_of["compiled"] = training_step(compiled, batch_size, optim)
    start = time.perf_counter()
    for _ in range(warmup):
        steps_of["compiled"]()
    first_steps = time.perf_counter() - start
    for _ in range(warmup):
        steps_of["eager"]()
    tokens_per_step = batch_size * shape["context_length"]
    rates = alternate(steps_of, tokens_per_step, pairs, steps)
    eager_s = tokens_per_step / statistics.median(rates["eager"])
    compiled_s = tokens_per_step / statistics.median(rates["compiled"])
    warm_up = max(first_steps - warmup * compiled_s, 0.0)
    saved = eager_s - compiled_s
    ratios = [c / e for c, e in zip(rates["compiled"], rates["eager"], strict=True)]
    return {
        "batch": [batch_size, shape["context_length"]],
        "eager_tokens_per_s": statistics.median(rates["eager"]),
        "compiled_tokens_per_s": statistics.median(rates["compiled"]),
        "ratios": ratios,
        "ratio_compiled_vs_eager": statistics.median(ratios),
        "warm_up_s": warm_up,
        "break_even_steps": warm_up / saved if saved > 0 else None,
    }


def fused_adamw_payoff(
    shape: dict[str, Any], batch_size: int, optim: dict[str, Any], pairs: int = 6, steps: int = 10
) -> dict[str, Any]:
    """Training-step tokens/s of the LLaMA model with fused AdamW / with torch's foreach AdamW
    (`optim.fused` true / false), pair by pair in one process."""
    torch.manual_seed(0)
    steps_of = {
        "fused": training_step(llama_model(shape), batch_size, {**optim, "fused": True}),
        "foreach": training_step(llama_model(shape), batch_size, {**optim, "fused": False}),
    }
    for step in steps_of.values():
        step()
    rates = alternate(steps_of, batch_size * shape["context_length"], pairs, steps)
    ratios = [f / e for f, e in zip(rates["fused"], rates["foreach"], strict=True)]
    return {"ratios": ratios, "ratio_fused_vs_foreach": statistics.median(ratios)}


def freed_memory_run(
    shape: dict[str, Any], batch_size: int, optim: dict[str, Any], reuse: bool, steps: int
) -> dict[str, float]:
    """The LLaMA model's bare-loop step with `speed.reuse_freed_memory` on or off: median
    seconds and page faults (minor, as counted by getrusage) per step after 2 warm-up steps.
    The allocator setting is process-wide and cannot be undone: run it in a fresh process."""
    import resource

    torch.manual_seed(0)
    step = training_step(llama_model(shape), batch_size, optim, {"reuse_freed_memory": reuse})
    for _ in range(2):
        step()
    faults, seconds = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"step_s": statistics.median(seconds), "faults_per_step": faults / steps}


def freed_memory_payoff(
    shape: dict[str, Any], batch_size: int, optim: dict[str, Any], pairs: int = 3, steps: int = 5
) -> dict[str, Any]:
    """Training-step tokens/s of the LLaMA model with glibc's malloc keeping freed memory /
    with its defaults, and the page faults per step of each: pairs of fresh processes
    (`freed_memory_run`), the order flipping every pair."""
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for pair in range(pairs):
        for reuse in (True, False) if pair % 2 == 0 else (False, True):
            run = in_fresh_process(freed_memory_run, shape, batch_size, optim, reuse, steps)
            runs[reuse].append(run)
    ratios = [off["step_s"] / on["step_s"] for on, off in zip(runs[True], runs[False], strict=True)]
    return {
        "ratios": ratios,
        "ratio_reuse_vs_default": statistics.median(ratios),
        "faults_per_step_reuse": statistics.median(r["faults_per_step"] for r in runs[True]),
        "faults_per_step_default": statistics.median(r["faults_per_step"] for r in runs[False]),
    }


# Pairs and steps per block for each model's per-FLOP row (tiny steps ~0.1 s, deep_narrow ~1.6 s).
PER_FLOP_MEASURE = {"tiny": (8, 10), "deep_narrow": (5, 3)}


def run_per_flop_bench(models: dict[str, tuple[dict, int]], quick: bool) -> dict[str, Any]:
    """The per-FLOP ratio, the fused / foreach AdamW ratio and the freed-memory payoff of each
    model (name -> (shape, batch)), and the compile payoff of the first, each in a fresh
    process (benchmarks/train.py's in_fresh_process)."""
    ratios, adamw, memory = [], [], []
    for name, (shape, batch) in models.items():
        pairs, steps = (2, 1) if quick else PER_FLOP_MEASURE.get(name, (5, 5))
        result = in_fresh_process(per_flop_ratio, shape, batch, OPTIM, pairs, steps)
        ratios.append({"model": name, **result})
        result = in_fresh_process(fused_adamw_payoff, shape, batch, OPTIM, pairs, steps)
        adamw.append({"model": name, "batch": ratios[-1]["batch"], **result})
        result = freed_memory_payoff(shape, batch, OPTIM, *((1, 1) if quick else (3, steps)))
        memory.append({"model": name, "batch": ratios[-1]["batch"], **result})
    name, (shape, batch) = next(iter(models.items()))
    pairs, steps = (1, 1) if quick else (4, 10)
    payoff = in_fresh_process(compile_payoff, shape, batch, OPTIM, pairs, steps)
    return {
        "ratios": ratios,
        "fused_adamw": adamw,
        "freed_memory": memory,
        "compile": {"model": name, **payoff},
    }


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="LLaMA / GPT-2-style achieved FLOP/s, paired")
    parser.add_argument("--model", choices=sorted(TRAIN_MODELS), default="tiny")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="steps per block")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    args = parser.parse_args(argv)
    shape, batch_size = TRAIN_MODELS[args.model]
    pairs, steps = PER_FLOP_MEASURE.get(args.model, (5, 5))
    r = per_flop_ratio(
        shape, batch_size, OPTIM, args.pairs or pairs, args.steps or steps, compile=args.compile
    )
    mode = "compiled" if args.compile else "eager"
    print(
        f"{args.model} ({mode}, batch {batch_size}x{shape['context_length']}): LLaMA "
        f"{r['llama_tokens_per_s']:,.0f} vs GPT-2-style {r['gpt2_tokens_per_s']:,.0f} tokens/s; "
        f"achieved FLOP/s ratio {r['ratio_llama_vs_gpt2']:.3f} "
        f"(pairs {', '.join(f'{x:.3f}' for x in r['ratios'])})"
    )
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
