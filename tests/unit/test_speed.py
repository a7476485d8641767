"""Speed switches change how fast a step runs, not what it computes or what a checkpoint holds."""

from __future__ import annotations

import pytest
import torch

from parrot_lm.core.errors import ConfigError
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.training.flops import flops_per_token, measure_peak_flops, non_embedding_params
from parrot_lm.training.speed import apply_speed_settings

CFG = dict(vocab_size=64, context_length=16, d_model=32, n_layers=2, n_heads=2, d_ff=64)


def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**CFG))


def _loss_and_grads(model: GPT) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.roll(-1, 1).flatten())
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_compile_in_place_keeps_checkpoint_keys_and_outputs():
    plain, compiled = _model(), _model()
    keys = list(plain.state_dict())
    apply_speed_settings({"compile": True, "compile_backend": "eager"}, compiled)
    assert list(compiled.state_dict()) == keys  # no `_orig_mod.` prefix
    x = torch.randint(0, 64, (2, 16))
    assert torch.allclose(plain(x), compiled(x), atol=1e-6)
    compiled.load_state_dict(plain.state_dict())  # loads both ways


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    plain, checkpointed = _model(), _model()
    apply_speed_settings({"activation_checkpointing": True}, checkpointed)
    assert checkpointed.activation_checkpointing
    loss_a, grads_a = _loss_and_grads(plain)
    loss_b, grads_b = _loss_and_grads(checkpointed)
    assert torch.equal(loss_a, loss_b)
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-6), name


@pytest.mark.parametrize(
    "speed, fragment",
    [
        ({"matmul_precision": "fast"}, "speed.matmul_precision"),
        ({"sdpa_backend": "triton"}, "speed.sdpa_backend"),
    ],
)
def test_bad_speed_values_are_one_sentence(speed, fragment):
    with pytest.raises(ConfigError, match=fragment):
        apply_speed_settings(speed, _model())


def test_flops_per_token_counts_the_matmul_parameters():
    cfg = GPTConfig(**CFG)
    model = GPT(cfg)
    # Every parameter but the norms is in a matmul; the tied embedding counts once (as the head).
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    assert non_embedding_params(cfg) == model.num_params() - norms
    assert flops_per_token(cfg) == 6 * non_embedding_params(cfg) + 6 * 2 * 16 * 32


def test_measured_peak_is_a_plausible_rate():
    peak = measure_peak_flops("cpu", torch.float32, size=128, repeats=3)
    assert 1e8 < peak < 1e14  # between 0.1 GFLOP/s and 100 TFLOP/s on any CPU


def test_vocab_multiple_pads_the_vocab_and_refuses_nonsense():
    from parrot_lm.training.run import resolve_model_config

    meta = {"vocab_size": 50257, "splits": {"train": {"max_token_id": 50256}}}
    assert resolve_model_config({**CFG, "vocab_size": None}, meta)["vocab_size"] == 50257
    padded = resolve_model_config({**CFG, "vocab_size": None, "vocab_multiple": 64}, meta)
    assert padded["vocab_size"] == 50304 and padded["vocab_multiple"] == 64
    assert GPTConfig(**padded).vocab_size == 50304  # saved in checkpoints: loads the same
    assert (
        resolve_model_config(
            {**CFG, "vocab_size": 128, "vocab_multiple": 64},
            {**meta, "splits": {"train": {"max_token_id": 100}}},
        )["vocab_size"]
        == 128
    )  # already a multiple
    with pytest.raises(ConfigError, match="model.vocab_multiple must be a positive integer"):
        resolve_model_config({**CFG, "vocab_size": None, "vocab_multiple": 0}, meta)


def test_compile_null_means_on_for_cuda_only(monkeypatch):
    calls = []
    monkeypatch.setattr(GPT, "compile", lambda self, **kw: calls.append(kw))
    apply_speed_settings({"compile": None}, _model(), on_cuda=False)
    assert calls == []
    apply_speed_settings({"compile": None}, _model(), on_cuda=True)
    assert calls == [{"mode": None, "backend": "inductor"}]
    apply_speed_settings({"compile": False}, _model(), on_cuda=True)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "setting, on_cuda, applied",
    [(None, False, True), (None, True, False), (True, True, True), (False, False, False)],
)
def test_freed_memory_is_kept_when_training_on_the_cpu_by_default(
    monkeypatch, setting, on_cuda, applied
):
    calls = []
    monkeypatch.setattr("parrot_lm.training.speed.reuse_freed_memory", lambda: calls.append(1))
    apply_speed_settings({"reuse_freed_memory": setting}, _model(), on_cuda=on_cuda)
    assert bool(calls) is applied
