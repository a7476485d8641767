"""The per-FLOP reference of `make bench` (benchmarks/per_flop.py) and the op profile
(benchmarks/profile.py): the reference model's shape, the FLOP accounting, and the bookkeeping
of the paired measurement. No timings are asserted."""

from __future__ import annotations

import statistics

import pytest
import torch
import torch.nn as nn

from benchmarks.per_flop import (
    GeluMLP,
    gpt2_model,
    llama_model,
    main,
    model_flops_per_token,
    per_flop_ratio,
)
from benchmarks.profile import op_profile, profile_table
from benchmarks.train import OPTIM, TRAIN_MODELS, TRAIN_QUICK
from parrot_lm.model import GPTConfig
from parrot_lm.model.norm import RMSNorm
from parrot_lm.training.flops import flops_per_token

QUICK_SHAPE, QUICK_BATCH = TRAIN_QUICK["quick"]


@pytest.mark.parametrize("name", sorted(TRAIN_MODELS))
def test_flops_from_linear_layers_match_the_training_accounting(name):
    shape, _ = TRAIN_MODELS[name]
    with torch.device("meta"):
        model = llama_model(shape)
    assert model_flops_per_token(model) == flops_per_token(GPTConfig(**shape))


def test_gpt2_reference_is_layernorm_learned_positions_and_a_4x_gelu_mlp():
    model = gpt2_model(TRAIN_MODELS["tiny"][0])
    d = model.cfg.d_model
    assert model.pos_emb is not None and dict(model.named_buffers()) == {}
    assert sum(isinstance(m, nn.LayerNorm) for m in model.modules()) == 2 * 4 + 1
    assert not any(isinstance(m, RMSNorm) for m in model.modules())
    for block in model.blocks:
        assert isinstance(block.mlp, GeluMLP)
        assert block.mlp.fc.weight.shape == (4 * d, d) and block.mlp.proj.weight.shape == (d, 4 * d)
    # The same size as the LLaMA block within 2% of FLOPs per token (4d GELU vs 3 x d_ff).
    llama = model_flops_per_token(llama_model(TRAIN_MODELS["tiny"][0]))
    assert model_flops_per_token(model) == pytest.approx(llama, rel=0.02)
    assert model_flops_per_token(model) != llama  # counted from its own layers


def test_per_flop_ratio_pairs_and_medians_are_consistent():
    r = per_flop_ratio(QUICK_SHAPE, QUICK_BATCH, OPTIM, pairs=3, steps=1, warmup=1)
    assert len(r["ratios"]) == 3 and all(x > 0 for x in r["ratios"])
    assert r["ratio_llama_vs_gpt2"] == statistics.median(r["ratios"])
    for name in ("llama", "gpt2"):
        flops = r[f"{name}_tokens_per_s"] * r[f"{name}_flops_per_token"]
        assert r[f"{name}_achieved_flops"] == pytest.approx(flops)
    assert r["batch"] == [QUICK_BATCH, QUICK_SHAPE["context_length"]]


def test_op_profile_lists_the_step_ops_most_expensive_first():
    ops = op_profile(QUICK_SHAPE, QUICK_BATCH, reference=False, steps=2, warmup=1)
    names = [op["op"] for op in ops]
    assert "aten::mm" in names and "aten::_scaled_dot_product_flash_attention_for_cpu" in names
    times = [op["ms_per_step"] for op in ops]
    assert times == sorted(times, reverse=True) and times[-1] > 0
    reference = {op["op"] for op in op_profile(QUICK_SHAPE, QUICK_BATCH, True, 1, 1)}
    assert "aten::native_layer_norm" in reference and "aten::gelu" in reference
    table = profile_table(ops, top=3).splitlines()
    assert len(table) == 2 + 3 + 1 and table[-1].startswith("| all ops |")


def test_per_flop_command_prints_the_paired_ratio(capsys):
    r = main(["--model", "tiny", "--pairs", "1", "--steps", "1"])
    out = capsys.readouterr().out
    assert f"achieved FLOP/s ratio {r['ratio_llama_vs_gpt2']:.3f}" in out and "eager" in out


def test_alternate_takes_turns_and_reverses_the_order_every_round():
    from benchmarks import alternate

    calls: list[str] = []
    steps_of = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    rates = alternate(steps_of, tokens_per_step=100, pairs=2, steps=2)
    assert "".join(calls) == "aabbcc" + "ccbbaa"
    assert {name: len(r) for name, r in rates.items()} == {"a": 2, "b": 2, "c": 2}
    assert all(rate > 0 for r in rates.values() for rate in r)
