import math

import pytest
import torch
import torch.nn.functional as F

from parrot_lm.generation.decoding import generate_tokens
from parrot_lm.generation.params import SamplingParams
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.model.norm import RMSNorm, rms_norm_cpu
from parrot_lm.model.rope import apply_rope, pair_order, rope_cache, rotate_qkv


def small_cfg(**kw) -> GPTConfig:
    base = dict(vocab_size=97, context_length=16, d_model=32, n_layers=2, n_heads=4, d_ff=48)
    return GPTConfig(**{**base, **kw})


def test_output_shape():
    model = GPT(small_cfg())
    idx = torch.randint(0, 97, (3, 11))
    assert model(idx).shape == (3, 11, 97)


def test_deep_narrow_has_exactly_35_763_840_parameters():
    cfg = GPTConfig(
        vocab_size=50257, context_length=1024, d_model=320, n_layers=16, n_heads=8, d_ff=854
    )
    with torch.device("meta"):
        model = GPT(cfg)
    assert model.num_params() == 35_763_840


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_causality(n_kv_heads):
    torch.manual_seed(0)
    model = GPT(small_cfg(n_kv_heads=n_kv_heads)).eval()
    idx = torch.randint(0, 97, (2, 16))
    changed = idx.clone()
    changed[:, 10:] = torch.randint(0, 97, (2, 6))
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_gqa_has_fewer_kv_parameters():
    full, grouped = GPT(small_cfg()), GPT(small_cfg(n_kv_heads=1))
    assert grouped.blocks[0].attn.qkv.weight.shape[0] == 32 + 2 * 8
    assert full.num_params() > grouped.num_params()


def naive_rope(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Rotate each pair (i, i + d/2) by angle pos * theta^(-2i/d), one position at a time."""
    B, H, T, D = x.shape
    out = torch.empty_like(x)
    for pos in range(T):
        for i in range(D // 2):
            angle = pos * theta ** (-2 * i / D)
            c, s = math.cos(angle), math.sin(angle)
            a, b = x[..., pos, i], x[..., pos, i + D // 2]
            out[..., pos, i] = a * c - b * s
            out[..., pos, i + D // 2] = a * s + b * c
    return out


def paired(x: torch.Tensor) -> torch.Tensor:
    """Rotate-half layout [0..h-1, h..2h-1] -> pairs side by side [0, h, 1, h+1, ...]."""
    return x.unflatten(-1, (2, -1)).transpose(-1, -2).flatten(-2)


def rotation(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return torch.stack((cos.double(), sin.double()), dim=-1)


def test_rope_matches_naive_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    cos, sin = rope_cache(7, 8)
    rotated = apply_rope(paired(x), rotation(cos, sin))
    torch.testing.assert_close(rotated, paired(naive_rope(x)))


def test_pair_order_pairs_rows_within_each_rotated_head():
    order = pair_order(n_heads=2, head_dim=8, rows=3 * 8)  # the third head is left alone
    assert order.tolist() == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15] + list(
        range(16, 24)
    )


def test_pair_order_is_derived_not_saved():
    model = GPT(small_cfg())
    assert all("pair_order" not in key for key in model.state_dict())
    assert not hasattr(GPT(small_cfg(pos_encoding="learned")).blocks[0].attn, "qkv_pair_order")


def rotate_qkv_by_autograd(qkv, rot, n_heads, n_kv_heads):
    """rotate_qkv as autograd composes it: split the heads, apply_rope, split again."""
    qk, v = qkv.transpose(1, 2).split([n_heads + n_kv_heads, n_kv_heads], dim=1)
    q, k = apply_rope(qk, rot).split([n_heads, n_kv_heads], dim=1)
    return q, k, v


@pytest.mark.parametrize("n_kv_heads", [4, 2])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("grad_layout", ["contiguous", "transposed"])
def test_rotate_qkv_matches_autograd_in_value_and_gradient(n_kv_heads, per_row, grad_layout):
    """The eager function's hand-written backward (inverse rotation, written straight into the
    projection's layout) gives autograd's gradients; rotations per row as decoding uses them;
    incoming gradients in any memory layout (SDPA's math backend hands k's back transposed)."""
    torch.manual_seed(0)
    B, T, hd = 2, 5, 8
    qkv = torch.randn(B, T, 4 + 2 * n_kv_heads, hd, dtype=torch.float64, requires_grad=True)
    cos, sin = rope_cache(T, hd)
    rot = rotation(cos, sin)  # (T, hd/2, 2)
    if per_row:
        rot = torch.stack((rot, rot.roll(1, dims=0)))[:, None]  # (B, 1, T, hd/2, 2)
    grads = [torch.randn(B, h, T, hd, dtype=torch.float64) for h in (4, n_kv_heads, n_kv_heads)]
    if grad_layout == "transposed":  # (B, h, T, hd) values stored as (B, h, hd, T)
        grads = [g.transpose(-1, -2).contiguous().transpose(-1, -2) for g in grads]
    results = []
    for function in (rotate_qkv, rotate_qkv_by_autograd):
        out = function(qkv, rot, 4, n_kv_heads)
        (grad_qkv,) = torch.autograd.grad(out, qkv, grads)
        results.append((*out, grad_qkv))
    for ours, reference in zip(*results, strict=True):
        torch.testing.assert_close(ours, reference)
    assert torch.autograd.gradcheck(lambda t: rotate_qkv(t, rot, 4, n_kv_heads), (qkv,))


@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_training_with_dropout_gives_autograds_gradients(monkeypatch, n_kv_heads):
    """Attention dropout runs SDPA's math backend, whose gradients come in other layouts than
    the flash kernel's; the model's gradients equal those of autograd's composition."""
    model = GPT(small_cfg(dropout=0.1, n_kv_heads=n_kv_heads)).train()
    idx = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(0))
    grads = []
    for _ in range(2):
        torch.manual_seed(1)  # the same dropout masks
        model.zero_grad()
        model(idx).logsumexp(-1).mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        monkeypatch.setattr("parrot_lm.model.gpt.rotate_qkv", rotate_qkv_by_autograd)
    for ours, reference in zip(*grads, strict=True):
        torch.testing.assert_close(ours, reference)


def test_rotate_qkv_rotates_bf16_in_float32_and_returns_bf16():
    torch.manual_seed(0)
    qkv = torch.randn(2, 5, 6, 8, requires_grad=True)
    cos, sin = rope_cache(5, 8)
    rot = torch.stack((cos, sin), dim=-1)
    q, k, v = rotate_qkv(qkv.bfloat16(), rot, 2, 2)
    assert q.dtype == k.dtype == v.dtype == torch.bfloat16
    reference = rotate_qkv_by_autograd(qkv.bfloat16().float(), rot, 2, 2)
    for ours, expected in zip((q, k, v), reference, strict=True):
        torch.testing.assert_close(ours.float(), expected, rtol=0, atol=0.02)
    (q.float().sum() + k.float().sum()).backward()
    assert qkv.grad.dtype == torch.float32 and qkv.grad[:, :, 4:].abs().sum() == 0


def test_attention_equals_rotate_half_reference():
    """The paired computation (rope.py) gives HF Llama's rotate-half attention exactly."""
    torch.manual_seed(0)
    model = GPT(small_cfg(n_kv_heads=2)).double().eval()
    attn, x = model.blocks[0].attn, torch.randn(2, 16, 32, dtype=torch.float64)
    q, k, v = attn.qkv(x).split([32, 16, 16], dim=-1)  # the checkpoint's own layout
    cos, sin = (t.double() for t in rope_cache(16, 8))

    def rope(t: torch.Tensor) -> torch.Tensor:  # HF Llama's apply_rotary_pos_emb
        t = t.unflatten(-1, (-1, 8)).transpose(1, 2)  # (B, heads, T, hd)
        c, s = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
        return t * c + torch.cat((-t[..., 4:], t[..., :4]), -1) * s

    q, k = rope(q), rope(k).repeat_interleave(2, dim=1)
    v = v.unflatten(-1, (-1, 8)).transpose(1, 2).repeat_interleave(2, dim=1)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(2)
    rot = model._rope(torch.arange(16))
    torch.testing.assert_close(attn(x, rot), attn.proj(y))


def test_rope_is_relative():
    """q.k after RoPE depends only on the distance between positions."""
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    cos, sin = rope_cache(32, 8)
    rot = torch.stack((cos, sin), dim=-1)

    def score(i: int, j: int) -> float:
        qi = apply_rope(q, rot[i : i + 1])
        kj = apply_rope(k, rot[j : j + 1])
        return float((qi * kj).sum())

    assert score(5, 3) == pytest.approx(score(20, 18), abs=1e-5)
    assert score(5, 3) != pytest.approx(score(5, 0), abs=1e-3)


def test_loss_at_init_is_close_to_ln_vocab():
    torch.manual_seed(0)
    vocab = 1000
    model = GPT(small_cfg(vocab_size=vocab, d_model=64, n_heads=4))
    idx, targets = torch.randint(0, vocab, (2, 8, 16))
    loss = F.cross_entropy(model(idx).flatten(0, 1), targets.flatten())
    assert abs(loss.item() - math.log(vocab)) < 0.1


def test_weights_are_tied_and_untied_on_request():
    tied = GPT(small_cfg())
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert "lm_head.weight" not in dict(tied.named_parameters())
    untied = GPT(small_cfg(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert untied.num_params() == tied.num_params() + 97 * 32


def test_no_biases_and_depth_scaled_residual_init():
    torch.manual_seed(0)
    model = GPT(small_cfg(d_model=256, n_heads=4, d_ff=512, n_layers=8))
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    qkv_std = model.blocks[0].attn.qkv.weight.std().item()
    proj_std = model.blocks[0].attn.proj.weight.std().item()
    assert qkv_std == pytest.approx(0.02, rel=0.05)
    assert proj_std == pytest.approx(0.02 / math.sqrt(16), rel=0.05)


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(d_model=30, n_heads=4), "must divide"),
        (dict(n_kv_heads=3), "n_kv_heads"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(d_model=24, n_heads=8), "even head dimension"),
        (dict(dropout=1.5), "dropout"),
    ],
)
def test_config_rejects_bad_values(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        small_cfg(**kw)


def test_sequence_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="exceeds the model's context length"):
        GPT(small_cfg())(torch.zeros(1, 17, dtype=torch.long))


def test_greedy_generate_is_deterministic_and_extends():
    model = GPT(small_cfg()).eval()
    idx = torch.randint(0, 97, (2, 5))
    a = generate_tokens(model, idx.tolist(), SamplingParams(8, temperature=0))
    b = generate_tokens(model, idx.tolist(), SamplingParams(8, temperature=0))
    assert [len(row) for row in a] == [8, 8] and a == b


def test_generate_respects_vocab_limit():
    torch.manual_seed(0)
    model = GPT(small_cfg()).eval()
    out = generate_tokens(model, [[0]] * 4, SamplingParams(30, temperature=2.0), vocab_limit=10)
    assert max(max(row) for row in out) < 10


def test_rope_rotates_bf16_in_float32_and_returns_bf16():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 8)
    cos, sin = rope_cache(5, 8)
    rot = torch.stack((cos, sin), dim=-1)[:, None]
    out = apply_rope(x.bfloat16(), rot)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(
        out.float(), apply_rope(x.bfloat16().float(), rot), rtol=0, atol=0.02
    )


def test_cpu_rms_norm_matches_torch_in_value_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(16, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(3, 5, 16, dtype=torch.float64)
    ours = rms_norm_cpu(x, weight, 1e-5)
    (ours * grad).sum().backward()
    ours_grads = x.grad.clone(), weight.grad.clone()
    x.grad = weight.grad = None
    reference = F.rms_norm(x, (16,), weight, 1e-5)
    (reference * grad).sum().backward()
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(ours_grads, (x.grad, weight.grad))
    assert torch.autograd.gradcheck(lambda a, w: rms_norm_cpu(a, w, 1e-5), (x[:1, :2], weight))


def test_rms_norm_module_keeps_nn_rmsnorm_state_and_type():
    norm = RMSNorm(16, eps=1e-5)
    assert isinstance(norm, torch.nn.RMSNorm) and list(norm.state_dict()) == ["weight"]
    x = torch.randn(2, 16)
    torch.testing.assert_close(norm(x), torch.nn.RMSNorm(16, eps=1e-5)(x))


def test_rotate_qkv_under_compile_takes_real_arithmetic_with_the_same_result(monkeypatch):
    """Under torch.compile rotate_qkv composes apply_rope's real arithmetic (inductor has no
    complex kernels); the eager complex multiply gives the same q, k, v."""
    torch.manual_seed(0)
    qkv = torch.randn(2, 5, 6, 8)
    cos, sin = rope_cache(5, 8)
    rot = torch.stack((cos, sin), dim=-1)
    eager = rotate_qkv(qkv, rot, 2, 2)
    calls = []
    monkeypatch.setattr(
        "parrot_lm.model.rope.apply_rope", lambda *a: calls.append(1) or apply_rope(*a)
    )
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    compiled_path = rotate_qkv(qkv, rot, 2, 2)
    assert calls == [1]
    for a, b in zip(compiled_path, eager, strict=True):
        torch.testing.assert_close(a, b)


def test_frozen_for_decoding_reuses_one_paired_weight_and_drops_it_on_leaving():
    """Decoding pairs each qkv weight once; outside the context every forward pairs the weight
    it is given (fused AdamW updates weights without bumping their version counters, so no
    cache keyed on them could be trusted)."""
    torch.manual_seed(0)
    model, fresh = GPT(small_cfg()).eval(), GPT(small_cfg()).eval()
    fresh.load_state_dict(model.state_dict())
    idx = torch.randint(0, 97, (2, 9))
    with torch.no_grad(), model.frozen_for_decoding():
        attn = model.blocks[0].attn
        assert attn.paired_qkv_weight() is attn.paired_qkv_weight()
        torch.testing.assert_close(model(idx), fresh(idx))
    assert all(block.attn.frozen_paired_weight is None for block in model.blocks)
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    model(idx).square().mean().backward()
    optimizer.step()  # in place, version counters untouched
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(idx), fresh(idx))
    with pytest.raises(RuntimeError), model.frozen_for_decoding():
        raise RuntimeError("a failed generation")
    assert all(block.attn.frozen_paired_weight is None for block in model.blocks)
