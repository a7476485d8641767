"""`parrot-plan [train.py's overrides] [probe=false]`: what the run costs before it starts.

Composes the training config as train.py does (without a run dir), prints parameters, FLOPs,
tokens and memory (parrot_lm/planning/counts.py), refuses with one sentence when the run
cannot fit the device's memory, then times a few real steps (probe.py) unless `probe=false`.
"""

from __future__ import annotations

import sys

from parrot_lm.core.cli import CONF_DIR, compose_config, exit_on_user_error
from parrot_lm.core.errors import ConfigError

GIB = 1024**3


def split_plan_args(argv: list[str]) -> tuple[list[str], bool]:
    """train.py's overrides, and whether to probe: `probe=` is the planner's own key, not the
    training config's, so it is taken out before composing."""
    probe, rest = True, []
    for arg in argv:
        if arg.startswith("probe="):
            value = arg.split("=", 1)[1].lower()
            if value not in ("true", "false"):
                raise ConfigError(f"probe={value} is not true or false.")
            probe = value == "true"
        else:
            rest.append(arg)
    return rest, probe


def _si(x: float) -> str:
    for unit, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.2f}{unit}"
    return f"{x:.0f}"


def _gib(n: float) -> str:
    """Bytes as GiB, or MiB below one GiB (a tiny model's parts would all read 0.00 GiB)."""
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 1024**2:.1f} MiB"


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def plan_lines(cfg, vocab_note: str, gpt_cfg, params, tokens, memory, device, total_memory):
    """The plan as printed lines (everything but the probe)."""
    tie = "tied input/output embedding" if params.tied else "separate output head"
    chosen = "with" if memory.checkpointing else "without"
    return [
        f"Model: d_model {gpt_cfg.d_model}, {gpt_cfg.n_layers} layers, {gpt_cfg.n_heads} heads, "
        f"context {gpt_cfg.context_length}, vocab {gpt_cfg.vocab_size:,} ({vocab_note})",
        f"Parameters: {params.total:,} total = {params.non_embedding:,} non-embedding + "
        f"{params.embedding:,} embedding ({tie})",
        f"FLOPs: {_si(tokens.flops_per_token)} per token (6N + 6*layers*context*d_model, "
        f"Kaplan et al. 2020), {_si(tokens.flops_per_step)} per optimizer step, "
        f"{_si(tokens.flops_per_step * cfg.trainer.max_steps)} in total",
        f"Tokens: {tokens.per_step:,} per optimizer step (batch {cfg.data.batch_size} x context "
        f"{cfg.data.context_length} x accumulation {cfg.trainer.accumulate_grad_batches} x "
        f"{tokens.per_step // (tokens.micro_batch * cfg.trainer.accumulate_grad_batches)} "
        f"process(es)), {tokens.total:,} in {cfg.trainer.max_steps:,} steps",
        f"Tokens per parameter: {tokens.tokens_per_param:.1f} (compute-optimal ~20, Hoffmann "
        f"et al. 2022: {20 * params.total:,} tokens)",
        f"Memory ({cfg.trainer.precision}, {cfg.optim.name}): weights {_gib(memory.weights)}, "
        f"gradients {_gib(memory.gradients)}, optimizer state "
        f"{_gib(memory.optimizer)}",
        f"Activations at micro-batch {cfg.data.batch_size} (Korthikanti et al. 2022, "
        f"s*b*h*(34+5*a*s/h) per layer + logits): {_gib(memory.activations)} without, "
        f"{_gib(memory.activations_checkpointed)} with activation checkpointing",
        f"Total: ~{_gib(memory.total)} ({chosen} checkpointing) of "
        + (
            f"{device}'s {total_memory / GIB:.1f} GiB"
            if device is not None
            else "the configured GPU's memory (no CUDA GPU on this machine to compare against)"
        ),
    ]


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """`parrot-plan [overrides] [probe=false]` (argv default: sys.argv[1:])."""
    overrides, probe = split_plan_args(sys.argv[1:] if argv is None else list(argv))
    # No run dir: the output dir only has to resolve (as scripts/prepare.py does).
    cfg = compose_config(str(CONF_DIR), "train", ["paths.output_dir=.", *overrides])
    from parrot_lm.config.schema import validate_config
    from parrot_lm.planning import counts
    from parrot_lm.planning.probe import device_memory, device_of, run_probe

    cfg = validate_config(cfg)
    vocab, note = counts.resolve_vocab(cfg)
    gpt_cfg = counts.model_config(cfg, vocab)
    params = counts.count_params(gpt_cfg)
    tokens = counts.count_tokens(cfg, gpt_cfg, params)
    memory = counts.estimate_memory(cfg, gpt_cfg, params)
    device = device_of(cfg.trainer, strict=probe)
    total_memory = device_memory(device) if device is not None else 0
    for line in plan_lines(cfg, note, gpt_cfg, params, tokens, memory, device, total_memory):
        print(line, flush=True)
    if device is not None and memory.total > total_memory:
        hint = "" if memory.checkpointing else ", set speed.activation_checkpointing=true"
        raise ConfigError(
            f"The run needs about {memory.total / GIB:.1f} GiB but {device} has "
            f"{total_memory / GIB:.1f} GiB; lower data.batch_size (and raise "
            f"trainer.accumulate_grad_batches to keep the tokens per step){hint}."
        )
    if not probe:
        return
    result = run_probe(cfg, gpt_cfg, tokens.flops_per_token)
    measured = f", peak allocated {result.peak_memory / GIB:.2f} GiB" if result.peak_memory else ""
    print(
        f"Probe on {device} (5 steps after 2 warm-up, random tokens): {result.step_s:.3f} s per "
        f"step, {result.tokens_per_s:,.0f} tokens/s, MFU {100 * result.mfu:.1f}% of "
        f"{_si(result.peak.flops)}FLOP/s ({result.peak.source}){measured}",
        flush=True,
    )
    print(
        f"Projected: {_duration(result.step_s * cfg.trainer.max_steps)} for "
        f"{cfg.trainer.max_steps:,} steps (training steps only, validation and checkpoints "
        "not counted)",
        flush=True,
    )
