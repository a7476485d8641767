"""Generation: the KV cache changes nothing but speed; sampling stays inside its set; the
command refuses bad sampling before loading anything. On a trained run:
tests/integration/test_generate_trained.py and tests/e2e/test_generate_cli.py."""

import dataclasses

import pytest
import torch

from parrot_lm.core.errors import ConfigError
from parrot_lm.generation.decoding import filter_logits, generate_tokens, sample_next
from parrot_lm.generation.params import SamplingParams
from parrot_lm.model import GPT, GPTConfig


def sharp_model(n_kv_heads: int | None = None, context: int = 48) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=97, context_length=context, d_model=64, n_layers=2, n_heads=4,
        n_kv_heads=n_kv_heads, d_ff=96,
    )  # fmt: skip
    model = GPT(cfg).eval()
    for p in model.parameters():  # larger weights: confident logits, no near-ties for argmax
        p.data.normal_(0.0, 0.3)
    return model


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, temperature=0)


def greedy_by_recomputation(model: GPT, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    for _ in range(n):
        logits = model(torch.tensor([ids[-model.cfg.context_length :]]))[0, -1]
        ids.append(int(logits.argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize("n_kv_heads", [None, 2])
def test_kv_cache_greedy_equals_full_recomputation_for_a_ragged_batch(n_kv_heads):
    model = sharp_model(n_kv_heads)
    prompts = [[5, 6, 7, 8, 9, 10, 11], [42], [1, 2, 3]]
    expected = [greedy_by_recomputation(model, p, 30) for p in prompts]
    assert generate_tokens(model, prompts, greedy(30)) == expected
    assert generate_tokens(model, prompts, greedy(30), use_cache=False) == expected
    # Each prompt alone gives the same as in the batch: padding is invisible.
    assert [generate_tokens(model, [p], greedy(30))[0] for p in prompts] == expected


def test_decoding_runs_eagerly_on_a_model_compiled_for_training():
    """speed.compile compiles the model in place; the sample callback's decoding must not
    compile a graph per prompt and cache length (no graph is captured at all)."""
    from torch._dynamo.utils import counters

    model = sharp_model()
    expected = generate_tokens(model, [[5, 6, 7], [42]], greedy(5))
    model.compile()
    counters.clear()
    assert generate_tokens(model, [[5, 6, 7], [42]], greedy(5)) == expected
    assert counters["stats"]["unique_graphs"] == 0


def test_cache_fed_in_chunks_gives_the_logits_of_one_forward():
    """Unpadded rows take the cache's short path (shared positions, no mask) for a first chunk
    and single tokens; a later multi-token chunk needs the causal mask: all agree with one pass."""
    from parrot_lm.model.gpt import KVCache

    model = sharp_model()
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids)  # (2, 12, V)
        cache = KVCache(model.cfg, 2, 48, ids.device, torch.float32)
        chunks = [model(ids[:, :5], cache=cache), model(ids[:, 5:6], cache=cache)]
        chunks.append(model(ids[:, 6:], cache=cache))  # 6 tokens after 6 cached ones
    assert not cache.padded and cache.length == 12
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=1e-5)


def test_generation_runs_past_the_context_and_stops_at_eot():
    model = sharp_model(context=16)
    out = generate_tokens(model, [[1, 2, 3]], greedy(50))
    assert len(out[0]) == 50  # the cache slid instead of overflowing
    first = out[0][0]
    assert generate_tokens(model, [[1, 2, 3]], greedy(50), eot_id=first) == [[]]
    sampled = SamplingParams(max_new_tokens=20, temperature=1.0)
    seeded = generate_tokens(model, [[4]], sampled, generator=torch.Generator().manual_seed(3))
    again = generate_tokens(model, [[4]], sampled, generator=torch.Generator().manual_seed(3))
    assert seeded == again
    # params.seed seeds the same way as a generator seeded with it.
    by_seed = SamplingParams(max_new_tokens=20, temperature=1.0, seed=3)
    assert generate_tokens(model, [[4]], by_seed) == seeded


def test_top_k_and_top_p_never_sample_outside_their_set():
    torch.manual_seed(1)
    logits = torch.randn(4, 50) * 3
    generator = torch.Generator().manual_seed(0)
    for top_k, top_p in [(5, None), (None, 0.5), (None, 0.9), (10, 0.8)]:
        allowed = torch.ones_like(logits, dtype=torch.bool)
        if top_k:
            allowed &= logits >= torch.topk(logits, top_k).values[:, [-1]]
        # top-p applies to what top-k left, renormalised (as transformers' warpers do)
        probs = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)
        if top_p:  # smallest prefix of the sorted probabilities whose mass reaches top_p
            for row in range(logits.shape[0]):
                order = probs[row].argsort(descending=True).tolist()
                keep, mass = set(), 0.0
                for i in order:
                    keep.add(i)
                    mass += float(probs[row, i])
                    if mass >= top_p:
                        break
                allowed[row] &= torch.tensor([i in keep for i in range(50)])
        filtered = filter_logits(logits, top_k, top_p)
        assert torch.equal(torch.isfinite(filtered), allowed)
        params = SamplingParams(max_new_tokens=1, temperature=1.0, top_k=top_k, top_p=top_p)
        for _ in range(200):
            ids = sample_next(logits, params, generator)
            assert allowed[torch.arange(4), ids].all()
    assert torch.equal(sample_next(logits, greedy(1)), logits.argmax(dim=-1))


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("max_new_tokens", 0, "max_new_tokens must be an integer >= 1"),
        ("max_new_tokens", 2.5, "max_new_tokens must be an integer >= 1"),
        ("max_new_tokens", True, "max_new_tokens must be an integer >= 1"),
        ("temperature", -0.5, "temperature must be >= 0"),
        ("temperature", float("nan"), "temperature must be a finite number"),
        ("temperature", float("inf"), "temperature must be a finite number"),
        ("temperature", "hot", "temperature must be a finite number"),
        ("temperature", 10**400, "temperature must be a finite number"),
        ("top_k", -3, "top_k must be >= 0 (0 turns it off)"),
        ("top_k", 1.5, "top_k must be an integer or null"),
        ("top_p", 0, "top_p must be in (0, 1]"),
        ("top_p", 1.5, "top_p must be in (0, 1]"),
        ("top_p", float("nan"), "top_p must be in (0, 1]"),
        ("top_p", "all", "top_p must be a number"),
        ("seed", 1.5, "seed must be an integer or null"),
        ("stop", [1], "stop must be a string or a list of strings"),
    ],
)
def test_sampling_params_refuse_each_bad_value_with_a_sentence(field, value, fragment):
    with pytest.raises(ConfigError) as caught:
        SamplingParams(**{"max_new_tokens": 8, field: value})
    message = str(caught.value)
    assert message.startswith(field) and fragment in message
    assert message.endswith(".") and "\n" not in message
    assert caught.value.field == field


def test_sampling_params_normalise_and_stay_frozen():
    params = SamplingParams(8, temperature=1, top_k=0, top_p=1, seed=-1, stop=["", "END"])
    assert (params.temperature, params.top_k, params.top_p) == (1.0, None, 1.0)
    assert params.stop == ("END",) and SamplingParams(8, stop="x").stop == ("x",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.temperature = 2.0
    with pytest.raises(ConfigError, match="top_p"):  # replace() checks again
        dataclasses.replace(params, top_p=2.0)


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(1e-6, None, None), (1e-45, None, None), (1e-30, 5, 1e-9), (1.0, None, 1e-9),
     (1e30, None, None), (1e300, 3, 0.5), (5.0, 1, None), (1e-6, 10**9, 1.0)],
)  # fmt: skip
def test_extreme_sampling_values_give_a_valid_token_never_nan(temperature, top_k, top_p):
    """Tiny or huge temperatures and a tiny top_p, with masked (-inf) logits and low-precision
    logits: always a token the mask allows, the top one where only it can be chosen."""
    torch.manual_seed(0)
    logits = torch.randn(3, 40) * 20
    logits[:, 30:] = float("-inf")  # a padded vocab, as vocab_limit masks it
    params = SamplingParams(8, temperature=temperature, top_k=top_k, top_p=top_p)
    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for _ in range(20):
            low = logits.to(dtype)
            ids = sample_next(low, params, generator)
            assert ids.shape == (3,) and bool(((ids >= 0) & (ids < 30)).all())
            if temperature <= 1e-6 or top_p == 1e-9 or top_k == 1:  # only the top can win
                assert torch.equal(low[torch.arange(3), ids], low.max(dim=-1).values)
    model = sharp_model(context=16)
    out = generate_tokens(model, [[1, 2], [3]], dataclasses.replace(params, max_new_tokens=20))
    assert all(len(row) == 20 and all(0 <= t < 97 for t in row) for row in out)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("top_p=1.5", "top_p must be in (0, 1]; got 1.5."),
        ("top_p=0", "top_p must be in (0, 1]; got 0."),
        ("temperature=-1", "temperature must be >= 0 (0 is greedy); got -1."),
        ("max_new_tokens=0", "max_new_tokens must be an integer >= 1; got 0."),
        ("batch_size=0", "batch_size must be an integer >= 1; got 0."),
        ("stop=[1]", "stop must be a string or a list of strings"),
    ],
)
def test_generate_main_refuses_bad_sampling_before_loading(override, fragment, capsys, tmp_path):
    """`parrot_lm.generation.cli.main(argv)` (what scripts/generate.py and parrot-generate
    run): one sentence, exit 2, before the checkpoint is even looked for."""
    from parrot_lm.generation.cli import main

    with pytest.raises(SystemExit) as caught:
        main([f"ckpt={tmp_path / 'not-there.ckpt'}", override])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1
