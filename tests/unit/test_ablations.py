"""Architecture switches for ablations (norm, norm_position, pos_encoding, GQA, tying, dropout):
each does what it says, the defaults stay LLaMA's, and old checkpoints still load. Tiny models."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

from parrot_lm.config.schema import ModelSchema, validate_config
from parrot_lm.core.errors import ConfigError
from parrot_lm.data.tokenizer import CharTokenizer, save_tokenizer_dir
from parrot_lm.export.exporter import export_checkpoint
from parrot_lm.export.hf import check_llama_compatible
from parrot_lm.export.safetensors import WEIGHTS_FILE, load_safetensors_export
from parrot_lm.generation.decoding import generate_tokens
from parrot_lm.generation.params import SamplingParams
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.runs.checkpoints import CheckpointError, check_compatible
from parrot_lm.runs.loading import load_model
from tests.helpers import CONF_DIR, compose_train

VOCAB, CTX, D = 64, 16, 32
NEW_KEYS = {"norm": "rmsnorm", "norm_position": "pre", "pos_encoding": "rope"}


def cfg(**kw) -> GPTConfig:
    base = dict(vocab_size=VOCAB, context_length=CTX, d_model=D, n_layers=2, n_heads=2, d_ff=64)
    return GPTConfig(**{**base, **kw})


def model_of(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(cfg(**kw))


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def first_block_input(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = model.blocks[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    with torch.no_grad():
        model(idx)
    handle.remove()
    return seen[0]


def train_losses(model: GPT, steps: int = 15) -> list[float]:
    """AdamW on one fixed random batch: a model that can learn at all memorises it."""
    torch.manual_seed(1)
    idx, targets = torch.randint(0, VOCAB, (2, 4, CTX))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(idx).flatten(0, 1), targets.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def assert_trains(model: GPT) -> None:
    losses = train_losses(model)
    assert losses[-1] < 0.8 * losses[0], losses


def assert_causal(model: GPT) -> None:
    model.eval()
    idx = torch.randint(0, VOCAB, (2, CTX), generator=torch.Generator().manual_seed(2))
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


# ---- Defaults and validation ---------------------------------------------------------------


def test_defaults_are_the_llama_recipe():
    model = model_of()
    assert {k: getattr(model.cfg, k) for k in NEW_KEYS} == NEW_KEYS
    assert count(model, nn.RMSNorm) == 2 * 2 + 1 and count(model, nn.LayerNorm) == 0
    assert model.pos_emb is None and {n for n, _ in model.named_buffers()} == {
        "rope_cos",
        "rope_sin",
        "blocks.0.attn.qkv_pair_order",
        "blocks.1.attn.qkv_pair_order",
    }
    check_llama_compatible(model.cfg)  # the default model exports to Llama


def test_schema_and_tiny_yaml_mirror_the_config_defaults():
    defaults = {f.name: f.default for f in fields(GPTConfig)}
    schema = {f.name: f.default for f in fields(ModelSchema)}
    assert schema.keys() == defaults.keys()
    # Derived, not copied: every default but the data-filled vocab is GPTConfig's own.
    assert {k: v for k, v in schema.items() if k != "vocab_size"} == {
        k: v for k, v in defaults.items() if k != "vocab_size"
    }
    assert schema["vocab_size"] is None
    tiny = OmegaConf.load(CONF_DIR / "model" / "tiny.yaml")
    for key, value in NEW_KEYS.items():
        assert defaults[key] == schema[key] == tiny[key] == value


def test_switches_pass_through_the_hydra_config(tmp_path):
    composed = compose_train(
        tmp_path,
        [
            "model.vocab_size=64",
            "model.norm=layernorm",
            "model.norm_position=post",
            "model.pos_encoding=learned",
        ],
    )
    model_cfg = OmegaConf.to_container(validate_config(composed).model, resolve=True)
    built = GPTConfig(**model_cfg)
    assert (built.norm, built.norm_position, built.pos_encoding) == ("layernorm", "post", "learned")


@pytest.mark.parametrize(
    "key, value",
    [
        ("norm", "batchnorm"),
        ("norm", None),
        ("norm_position", "middle"),
        ("pos_encoding", "alibi"),
        ("pos_encoding", "RoPE"),
        ("n_kv_heads", 3),
        ("n_kv_heads", 0),
        ("n_kv_heads", "1"),
        ("tie_embeddings", "yes"),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("dropout", "0.1"),
    ],
)
def test_bad_values_name_their_key(key, value):
    with pytest.raises(ValueError, match=re.escape(f"model.{key}") + r"\b") as info:
        cfg(**{key: value})
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message


def test_bad_choice_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        cfg(norm="batchnorm")
    assert str(info.value) == "model.norm must be one of rmsnorm, layernorm, none; got 'batchnorm'."


def test_odd_head_dim_is_fine_without_rope():
    """Only RoPE rotates pairs of dimensions; learned and no positions take any head size."""
    with pytest.raises(ValueError, match="even head dimension"):
        cfg(d_model=30, n_heads=2)
    for pos in ("learned", "none"):
        model = GPT(cfg(d_model=30, n_heads=2, pos_encoding=pos))
        assert model(torch.zeros(1, 5, dtype=torch.long)).shape == (1, 5, VOCAB)


# ---- Positions -----------------------------------------------------------------------------


def test_nope_has_no_position_state_and_stays_causal():
    model = model_of(pos_encoding="none")
    assert model.pos_emb is None
    assert list(model.named_buffers()) == []  # not even RoPE tables
    assert not [k for k in model.state_dict() if "pos" in k or "rope" in k]
    assert_causal(model)


def test_nope_single_layer_ignores_the_order_of_earlier_tokens():
    """Without positions, one causal layer sees the prefix as a set: permuting the tokens before
    the last one leaves the last logits unchanged. RoPE and learned positions break this."""
    idx = torch.randint(0, VOCAB, (1, CTX), generator=torch.Generator().manual_seed(3))
    shuffled = idx.clone()
    shuffled[0, :-1] = idx[0, :-1].flip(0)
    for pos, invariant in (("none", True), ("rope", False), ("learned", False)):
        model = model_of(n_layers=1, pos_encoding=pos).eval()
        with torch.no_grad():
            a, b = model(idx)[0, -1], model(shuffled)[0, -1]
        assert torch.allclose(a, b, atol=1e-5) is invariant, pos


def test_nope_trains():
    assert_trains(model_of(pos_encoding="none"))


def test_learned_positions_are_added_to_the_embeddings():
    model = model_of(pos_encoding="learned").eval()
    assert model.pos_emb.weight.shape == (CTX, D)
    assert model.pos_emb.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert "pos_emb.weight" in model.state_dict()
    assert not list(model.named_buffers())
    same_token = torch.full((1, CTX), 7)
    x = first_block_input(model, same_token)  # (1, T, d_model)
    assert not torch.allclose(x[0, 0], x[0, 5])
    torch.testing.assert_close(x[0], model.tok_emb.weight[7] + model.pos_emb.weight)
    # RoPE and NoPE feed the same token identically at every position.
    for pos in ("rope", "none"):
        x = first_block_input(model_of(pos_encoding=pos), same_token)
        torch.testing.assert_close(x[0, 0], x[0, 5])
    assert_causal(model)


def greedy_by_recomputation(model: GPT, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    for _ in range(n):
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize("pos", ["rope", "learned", "none"])
def test_kv_cache_generation_equals_recomputation_for_a_ragged_batch(pos):
    """Left-padded rows: the cache must use each row's own positions (the learned table too)."""
    model = model_of(pos_encoding=pos).eval()
    for p in model.parameters():  # larger weights: confident logits, no near-ties for argmax
        p.data.normal_(0.0, 0.3)
    prompts = [[5, 6, 7, 8, 9, 10], [42], [1, 2, 3]]
    n = CTX - 1 - max(map(len, prompts))  # stay inside the context: no sliding window
    expected = [greedy_by_recomputation(model, p, n) for p in prompts]
    assert (
        generate_tokens(model, prompts, SamplingParams(n, temperature=0), use_cache=True)
        == expected
    )
    assert (
        generate_tokens(model, prompts, SamplingParams(n, temperature=0), use_cache=False)
        == expected
    )


# ---- Norms ---------------------------------------------------------------------------------


def block_output(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and output of the first block, (B, T, d_model) each."""
    seen = {}
    hook = model.blocks[0].register_forward_hook(lambda _, args, out: seen.update(x=args[0], y=out))
    with torch.no_grad():
        model(idx)
    hook.remove()
    return seen["x"], seen["y"]


def test_post_norm_normalises_after_the_residual_add():
    idx = torch.randint(0, VOCAB, (2, CTX), generator=torch.Generator().manual_seed(4))
    for norm in ("rmsnorm", "layernorm"):
        model = model_of(norm=norm, norm_position="post").eval()
        assert isinstance(model.norm, nn.Identity)
        kind = nn.RMSNorm if norm == "rmsnorm" else nn.LayerNorm
        assert count(model, kind) == 2 * 2  # two per block, no final norm
        x, y = block_output(model, idx)
        if norm == "rmsnorm":
            rms = y.pow(2).mean(-1).sqrt()
            torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=0)
        else:
            mean, var = y.mean(-1), y.var(-1, unbiased=False)
            torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
            torch.testing.assert_close(var, torch.ones_like(var), atol=1e-3, rtol=0)
        # By hand: norm(x + attn(x)), then norm(h + mlp(h)).
        block = model.blocks[0]
        rotation = model._rope(torch.arange(CTX))
        with torch.no_grad():
            h = block.attn_norm(x + block.attn(x, rotation))
            torch.testing.assert_close(y, block.mlp_norm(h + block.mlp(h)))

    pre = model_of(norm="rmsnorm", norm_position="pre").eval()
    _, y = block_output(pre, idx)
    rms = y.pow(2).mean(-1).sqrt()  # the residual stream keeps the embeddings' small scale
    assert rms.max().item() < 0.5
    assert isinstance(pre.norm, nn.RMSNorm)


def test_post_norm_trains():
    assert_trains(model_of(norm_position="post"))


def test_norm_none_has_no_norms_and_trains():
    for position in ("pre", "post"):
        model = model_of(norm="none", norm_position=position)
        assert count(model, nn.RMSNorm) + count(model, nn.LayerNorm) == 0
        assert not [n for n, _ in model.named_parameters() if "norm" in n]
    assert_causal(model_of(norm="none"))
    assert_trains(model_of(norm="none"))


def test_layernorm_modules_with_bias():
    model = model_of(norm="layernorm")
    assert count(model, nn.LayerNorm) == 2 * 2 + 1 and count(model, nn.RMSNorm) == 0
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            assert module.normalized_shape == (D,) and module.eps == model.cfg.norm_eps
            assert torch.equal(module.weight, torch.ones(D))
            assert torch.equal(module.bias, torch.zeros(D))
    biases = [n for n, _ in model.named_parameters() if n.endswith("bias")]
    assert len(biases) == 2 * 2 + 1 and all("norm" in n for n in biases)
    assert_causal(model)


# ---- Grouped-query attention, tying, dropout ------------------------------------------------


def mha_from_gqa(gqa: GPT) -> GPT:
    """The multi-head model whose key/value heads are the GQA ones repeated for each group."""
    c = gqa.cfg
    mha = GPT(cfg(n_heads=c.n_heads, n_kv_heads=c.n_heads))
    state = copy.deepcopy(gqa.state_dict())
    group = c.n_heads // c.n_kv_heads
    q_dim, kv_dim = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    for i in range(c.n_layers):
        key = f"blocks.{i}.attn.qkv.weight"
        q, k, v = state[key].split([q_dim, kv_dim, kv_dim])

        def repeat(w: torch.Tensor) -> torch.Tensor:  # (n_kv * hd, d) -> (n_heads * hd, d)
            heads = w.view(c.n_kv_heads, c.head_dim, c.d_model)
            return heads.repeat_interleave(group, dim=0).reshape(q_dim, c.d_model)

        state[key] = torch.cat((q, repeat(k), repeat(v)))
    mha.load_state_dict(state)
    return mha.eval()


@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_gqa_equals_mha_with_repeated_kv_heads(n_kv_heads):
    gqa = model_of(n_heads=4, n_kv_heads=n_kv_heads).eval()
    head_dim = D // 4
    assert gqa.blocks[0].attn.qkv.weight.shape == ((4 + 2 * n_kv_heads) * head_dim, D)
    mha = mha_from_gqa(gqa)
    assert gqa.num_params() < mha.num_params()
    idx = torch.randint(0, VOCAB, (2, CTX), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(gqa(idx), mha(idx), atol=1e-5, rtol=1e-5)


def test_gqa_single_kv_head_shape():
    model = model_of(n_heads=4, n_kv_heads=1)
    assert model.blocks[0].attn.qkv.weight.shape[0] == (4 + 2) * (D // 4)


def test_tied_and_untied_embeddings():
    tied, untied = model_of(), model_of(tie_embeddings=False)
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert untied.num_params() - tied.num_params() == VOCAB * D
    state = untied.state_dict()
    assert {"tok_emb.weight", "lm_head.weight"} <= state.keys()
    assert state["tok_emb.weight"].data_ptr() != state["lm_head.weight"].data_ptr()
    assert not torch.equal(state["tok_emb.weight"], state["lm_head.weight"])


def test_dropout_is_random_in_training_only():
    model = model_of(dropout=0.2)
    idx = torch.randint(0, VOCAB, (2, CTX), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(idx), model(idx))
        model.eval()
        assert torch.equal(model(idx), model(idx))


# ---- Old checkpoints and export ------------------------------------------------------------


def make_run(root: Path, model: GPT, hparams: dict | None = None) -> Path:
    """A run dir as training leaves it (checkpoints/last.ckpt, tokenizer/), char tokenizer."""
    data_dir, run = root / "data", root / "run"
    data_dir.mkdir(parents=True)
    (run / "checkpoints").mkdir(parents=True)
    CharTokenizer.train(["the quick brown fox"]).save(data_dir / "chars.json")
    save_tokenizer_dir({"kind": "char", "file": "chars.json"}, data_dir, run / "tokenizer")
    ckpt = {
        "state_dict": {"model." + k: v for k, v in model.state_dict().items()},
        "hyper_parameters": {"model": hparams or model.cfg.to_dict(), "optim": {}},
        "global_step": 3,
    }
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    return run


def test_checkpoint_from_before_the_switches_still_loads(tmp_path):
    model = model_of().eval()
    old = {k: v for k, v in model.cfg.to_dict().items() if k not in NEW_KEYS}
    run = make_run(tmp_path, model, hparams=old)
    loaded = load_model(run)
    assert {k: getattr(loaded.model.cfg, k) for k in NEW_KEYS} == NEW_KEYS
    idx = torch.randint(0, VOCAB, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(idx), model(idx))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    check_compatible(ckpt, model.cfg.to_dict(), run)  # missing keys count as defaults
    with pytest.raises(CheckpointError, match="model.pos_encoding=rope, but .* model.pos_encoding"):
        check_compatible(ckpt, cfg(pos_encoding="learned").to_dict(), run)


def test_llama_check_names_the_setting():
    with pytest.raises(ConfigError) as info:
        check_llama_compatible(cfg(pos_encoding="none"))
    message = str(info.value)
    assert "cannot represent model.pos_encoding=none" in message
    assert "format=safetensors works for every model" in message
    assert message.endswith(".") and ". " not in message  # one sentence
    with pytest.raises(ConfigError, match="model.norm=layernorm and model.norm_position=post"):
        check_llama_compatible(cfg(norm="layernorm", norm_position="post"))


def test_hf_export_of_nope_model_is_refused_before_writing(tmp_path):
    pytest.importorskip("transformers")
    run = make_run(tmp_path, model_of(pos_encoding="none"))
    with pytest.raises(ConfigError, match="cannot represent model.pos_encoding=none"):
        export_checkpoint(run, fmt="hf")
    assert not (run / "export").exists()


def test_safetensors_export_round_trips_every_switch(tmp_path):
    model = model_of(
        pos_encoding="learned", norm="layernorm", norm_position="post", tie_embeddings=False
    ).eval()
    with torch.no_grad():
        for p in model.parameters():  # away from init, so a dropped or swapped weight shows
            p.add_(torch.randn_like(p) * 0.1)
    run = make_run(tmp_path, model)
    out = export_checkpoint(run, fmt="safetensors")
    assert json.loads((out / "config.json").read_text()) == model.cfg.to_dict()
    from safetensors.torch import load_file

    assert {"pos_emb.weight", "blocks.0.attn_norm.bias"} <= load_file(out / WEIGHTS_FILE).keys()
    restored = load_safetensors_export(out)
    original = model.state_dict()
    assert restored.state_dict().keys() == original.keys()
    for name, tensor in restored.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    idx = torch.randint(0, VOCAB, (2, CTX))
    with torch.no_grad():
        torch.testing.assert_close(restored(idx), model(idx))
