"""Generation and evaluation benchmarks: tokens/s with and without the KV cache, against
`transformers`' `generate` on the same weights exported as a Llama model, and evaluation
windows/s. Random weights: speed does not depend on what the model learned."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import torch

from benchmarks import alternate
from benchmarks.prepare import _median_time
from parrot_lm.core.hardware import reuse_freed_memory
from parrot_lm.evaluation.perplexity import evaluate_perplexity
from parrot_lm.generation.decoding import generate_tokens
from parrot_lm.generation.params import SamplingParams
from parrot_lm.model import GPT, GPTConfig

# The model configs' shapes (conf/model/*.yaml); vocab is GPT-2's for deep_narrow, the
# default BPE's for tiny, whose context is raised so that 256 new tokens fit in it.
MODELS = {
    "tiny": dict(vocab_size=2048, context_length=512, d_model=128, n_layers=4, n_heads=4, d_ff=352),
    "deep_narrow": dict(
        vocab_size=50257, context_length=1024, d_model=320, n_layers=16, n_heads=8, d_ff=854
    ),
}
QUICK = dict(vocab_size=256, context_length=64, d_model=32, n_layers=2, n_heads=2, d_ff=64)


def _hf_model(model: GPT):
    """The same weights as a transformers LlamaForCausalLM (None if transformers is absent)."""
    try:
        from transformers import LlamaForCausalLM
    except ImportError:
        return None
    from parrot_lm.export.hf import hf_config, hf_state_dict

    hf = LlamaForCausalLM(hf_config(model.cfg, eot_id=model.cfg.vocab_size - 1))
    hf.load_state_dict(hf_state_dict(model.state_dict(), model.cfg), strict=True)
    return hf.eval()


def generation_speed(
    name: str, shape: dict[str, Any], new_tokens: int = 256, repeats: int = 3
) -> dict[str, Any]:
    """Greedy, batch 1, a 16-token prompt, exactly `new_tokens` new tokens (no EOT stop).
    The ways of generating take turns, `repeats` rounds after one warm-up each (the order
    reversed every round), so a drift in machine speed hits them alike; tokens/s is the
    median over the rounds."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**shape)).eval()
    prompt = torch.randint(0, shape["vocab_size"] - 1, (1, 16))
    greedy = SamplingParams(max_new_tokens=new_tokens, temperature=0)
    runs = {
        "kv_cache": lambda: generate_tokens(model, prompt.tolist(), greedy),
        "no_cache": lambda: generate_tokens(model, prompt.tolist(), greedy, use_cache=False),
    }
    hf = _hf_model(model)
    if hf is not None:
        runs["transformers"] = lambda: hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
        )
    with torch.inference_mode():
        for fn in runs.values():
            fn()
        rates = alternate(runs, new_tokens, pairs=repeats, steps=1)
    speed = {k: statistics.median(r) for k, r in rates.items()}
    result = {
        "model": name,
        "new_tokens": new_tokens,
        **{f"{k}_tokens_per_s": v for k, v in speed.items()},
        "kv_cache_speedup": speed["kv_cache"] / speed["no_cache"],
    }
    if hf is not None:
        result["vs_transformers"] = speed["kv_cache"] / speed["transformers"]
    return result


def evaluation_speed(shape: dict[str, Any], n_tokens: int, repeats: int = 3) -> dict[str, Any]:
    """Strided-perplexity windows/s at stride = context / 2, batch 8, on the CPU with freed
    memory kept, as the evaluate command runs there."""
    reuse_freed_memory()
    torch.manual_seed(0)
    model = GPT(GPTConfig(**shape)).eval()
    tokens = np.random.default_rng(0).integers(0, shape["vocab_size"], n_tokens)
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(evaluate_perplexity(model, tokens, shape["context_length"] // 2, 8))

    seconds = _median_time(run, repeats)
    return {"windows": result["windows"], "windows_per_s": result["windows"] / seconds}
