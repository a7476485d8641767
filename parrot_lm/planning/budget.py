"""Budget solver: the decoder shapes whose parameter count fits a budget, best first.

The count is the model's own, in closed form, for the LLaMA recipe GPT builds by default
(RMSNorm weight-only pre-norm, RoPE without parameters, SwiGLU, no biases; see
parrot_lm/model/gpt.py):

    embeddings   V' * d            (V' = vocab rounded up to vocab_multiple, as GPTConfig does)
    lm_head      V' * d            only when untied
    per layer    d * (h + 2 * kv) * head_dim   qkv
               + d * d                          attention output
               + 3 * d * d_ff                   SwiGLU gate, up, down
               + 2 * d                          two RMSNorm weights
    final norm   d

Search space, and why:

- d_model: multiples of `width_multiple` (64: the reference 320 is one, and aligned widths run
  faster) while min_layers layers of that width still fit the budget;
- n_heads: every divisor of d_model whose head_dim is even (RoPE rotates pairs) and within
  32..128, the range LLaMA-style models use (64 is the usual choice);
- n_kv_heads: n_heads (multi-head), plus every proper divisor of n_heads with `gqa`;
- d_ff: SwiGLU's 8/3 * d_model (Shazeer 2020, "GLU Variants Improve Transformer"), which
  keeps a SwiGLU MLP at the cost of a 4 * d_model GELU one, rounded *up* to a multiple of
  `ff_multiple` (1 gives the reference's 854 for d_model 320);
- n_layers: min_layers..max_layers. The cap matters: with depth ranked first an uncapped
  search would return 100-layer, 128-wide models; MobileLLM's own sub-billion models stay
  near 30 layers (Liu et al. 2024, "MobileLLM: Optimizing Sub-billion Parameter Language
  Models for On-Device Use Cases": 125M = 30 layers x 576).

Bounds on the work: the count grows with n_layers * d_model**2, so the widths searched end
where min_layers layers of the cheapest heads overflow the budget (not where the embedding
alone does: with a 257-token vocab that was ~7,600 widths at 125M), each width's head counts
come from the ~49 even head_dims rather than from every divisor, and each (width, heads) pair
gets its fitting layer counts in closed form. What is left grows with the budget and the
depth, so both are capped: params at MAX_PARAMS (ParrotLM builds ~1M to ~125M-parameter
models; 1B leaves room above GPT-2 small) and max_layers at MAX_LAYERS.

A shape is listed when floor * budget <= params <= budget (a shape at 10% of the budget fits
but is no answer). Ranking (`rank_key`), each rule breaking the previous one's ties:

1. more layers first: MobileLLM found that, at a fixed small budget, a deep and thin model
   beats a wide and shallow one;
2. narrower d_model first (the same finding, for shapes of equal depth);
3. more parameters first (closest to the budget: nothing paid for is left unused);
4. head_dim closest to 64 first, then more kv heads first (plain multi-head before GQA),
   then fewer heads: a total order, so the list is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from parrot_lm.core.errors import ConfigError

HEAD_DIM_RANGE = (32, 128)
USUAL_HEAD_DIM = 64
# The largest budget searched, in parameters: 8x GPT-2 small (124M), the top of the ~1M-125M
# range ParrotLM trains; beyond it the listed shapes (and the work) only grow, for models this
# project cannot train.
MAX_PARAMS = 10**9
# The deepest shape searched: 4x the default cap, and above any model of this size class
# (MobileLLM's are near 30 layers, GPT-2 XL's 1.5B has 48).
MAX_LAYERS = 128


@dataclass(frozen=True)
class Shape:
    """One decoder shape and its exact parameter count (as GPT(GPTConfig(...)).num_params())."""

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    tie_embeddings: bool
    params: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def model_overrides(self) -> dict[str, int | bool]:
        """The GPTConfig fields this shape sets (vocab and context come from the request)."""
        return {
            "d_model": self.d_model,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "d_ff": self.d_ff,
            "tie_embeddings": self.tie_embeddings,
        }


@dataclass(frozen=True)
class Budget:
    """What the user asked for: a parameter budget and the search's bounds."""

    params: int
    vocab_size: int = 50257
    context_length: int = 1024
    vocab_multiple: int = 1
    floor: float = 0.75
    min_layers: int = 2
    max_layers: int = 32
    width_multiple: int = 64
    ff_multiple: int = 1
    gqa: bool = False
    tie_embeddings: bool = True

    @property
    def padded_vocab(self) -> int:
        """The vocab GPTConfig will build: rounded up to vocab_multiple (config.py)."""
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple


def swiglu_d_ff(d_model: int, multiple: int = 1) -> int:
    """8/3 * d_model rounded up to `multiple` (integer arithmetic: no float rounding)."""
    return -(-8 * d_model // (3 * multiple)) * multiple


def count_params(
    vocab_size: int,
    d_model: int,
    n_layers: int,
    n_heads: int,
    n_kv_heads: int,
    d_ff: int,
    tie_embeddings: bool = True,
) -> int:
    """Parameters of the default (RMSNorm, pre-norm, RoPE) GPT with these fields; `vocab_size`
    is the padded one. Equal to GPT(GPTConfig(...)).num_params() (tests/unit/test_budget.py)."""
    head_dim = d_model // n_heads
    attention = d_model * (n_heads + 2 * n_kv_heads) * head_dim + d_model * d_model
    layer = attention + 3 * d_model * d_ff + 2 * d_model
    embeddings = vocab_size * d_model * (1 if tie_embeddings else 2)
    return embeddings + n_layers * layer + d_model


def head_choices(d_model: int, gqa: bool) -> list[tuple[int, int]]:
    """(n_heads, n_kv_heads) pairs for `d_model`: head_dim even and within HEAD_DIM_RANGE,
    fewest heads first.

    Walks the head_dims (at most 49) rather than the head counts: a head count is d_model //
    head_dim, and walking counts up to d_model // 32 made this linear in d_model.
    """
    low, high = HEAD_DIM_RANGE
    pairs = []
    for head_dim in range(high - high % 2, low - 1, -2):  # descending: n_heads ascending
        n_heads, rest = divmod(d_model, head_dim)
        if rest:
            continue
        kv_options = [k for k in range(1, n_heads + 1) if n_heads % k == 0] if gqa else [n_heads]
        pairs += [(n_heads, kv) for kv in kv_options]
    return pairs


def rank_key(shape: Shape) -> tuple:
    """The ranking of the module docstring, as a sort key (smaller sorts first)."""
    return (
        -shape.n_layers,
        shape.d_model,
        -shape.params,
        abs(shape.head_dim - USUAL_HEAD_DIM),
        -shape.n_kv_heads,
        shape.n_heads,
    )


def check_budget(budget: Budget) -> None:
    """Refuse bounds that leave no search at all, one sentence each."""
    for name in ("params", "vocab_size", "context_length", "vocab_multiple", "min_layers"):
        if getattr(budget, name) <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {getattr(budget, name)}.")
    for name in ("width_multiple", "ff_multiple"):
        if getattr(budget, name) <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {getattr(budget, name)}.")
    if budget.params > MAX_PARAMS:
        raise ConfigError(
            f"params {budget.params:,} is beyond what ParrotLM builds (models of ~1M to ~125M "
            f"parameters); give a budget of at most {MAX_PARAMS:,}."
        )
    if budget.max_layers > MAX_LAYERS:
        raise ConfigError(
            f"max_layers must be at most {MAX_LAYERS} (deeper than any model of this size "
            f"class), got {budget.max_layers}."
        )
    if budget.max_layers < budget.min_layers:
        raise ConfigError(
            f"max_layers ({budget.max_layers}) is below min_layers ({budget.min_layers}); "
            "raise max_layers."
        )
    if not 0.0 <= budget.floor <= 1.0:
        raise ConfigError(f"floor must be a fraction in [0, 1], got {budget.floor}.")


def solve(budget: Budget) -> list[Shape]:
    """Every shape within [floor * params, params] parameters, ranked by `rank_key`.

    The work is bounded whatever the request (the module docstring's "Bounds on the work").
    Raises ConfigError (one sentence) for a request out of bounds (`check_budget`) and when
    nothing fits, saying what the smallest shape needs.
    """
    check_budget(budget)
    vocab = budget.padded_vocab
    tie = budget.tie_embeddings
    shapes = []
    d_model = budget.width_multiple
    # The count only grows with d_model, so once the cheapest shape of a width (min_layers,
    # the fewest parameters any head split has) overflows, every wider one does too.
    while cheapest_count(vocab, d_model, budget) <= budget.params:
        d_ff = swiglu_d_ff(d_model, budget.ff_multiple)
        for n_heads, n_kv_heads in head_choices(d_model, budget.gqa):
            for n_layers in fitting_layers(budget, vocab, d_model, n_heads, n_kv_heads, d_ff):
                params = count_params(vocab, d_model, n_layers, n_heads, n_kv_heads, d_ff, tie)
                shapes.append(Shape(n_layers, d_model, n_heads, n_kv_heads, d_ff, tie, params))
        d_model += budget.width_multiple
    if not shapes:
        raise ConfigError(no_fit_sentence(budget))
    return sorted(shapes, key=rank_key)


def cheapest_count(vocab: int, d_model: int, budget: Budget) -> int:
    """A lower bound, in parameters, on every shape of width `d_model` the search allows:
    min_layers layers, attention counted at its floor of 2 * d_model**2 (query and output;
    the keys and values of one kv head add more), with the embedding and MLP exact."""
    layer = 2 * d_model * d_model + 3 * d_model * swiglu_d_ff(d_model, budget.ff_multiple)
    embeddings = vocab * d_model * (1 if budget.tie_embeddings else 2)
    return embeddings + budget.min_layers * (layer + 2 * d_model) + d_model


def fitting_layers(
    budget: Budget, vocab: int, d_model: int, n_heads: int, n_kv_heads: int, d_ff: int
) -> range:
    """The layer counts within min_layers..max_layers whose shape has between floor * params
    and params parameters, in closed form: the count is linear in n_layers."""
    tie = budget.tie_embeddings
    base = count_params(vocab, d_model, 0, n_heads, n_kv_heads, d_ff, tie)
    per_layer = count_params(vocab, d_model, 1, n_heads, n_kv_heads, d_ff, tie) - base
    high = min(budget.max_layers, (budget.params - base) // per_layer)
    low = max(budget.min_layers, math.ceil((budget.floor * budget.params - base) / per_layer))
    # The float division may land one off: settle `low` on the comparison the listing makes.
    while low <= high and base + low * per_layer < budget.floor * budget.params:
        low += 1
    while low - 1 >= budget.min_layers and base + (low - 1) * per_layer >= (
        budget.floor * budget.params
    ):
        low -= 1
    return range(low, high + 1)


def no_fit_sentence(budget: Budget) -> str:
    """Why nothing fits: the smallest shape the search allows, and its cost."""
    d_model = budget.width_multiple
    n_heads = max(1, d_model // USUAL_HEAD_DIM)
    smallest = count_params(
        budget.padded_vocab,
        d_model,
        budget.min_layers,
        n_heads,
        n_heads,
        swiglu_d_ff(d_model, budget.ff_multiple),
        budget.tie_embeddings,
    )
    if smallest > budget.params:
        return (
            f"No model shape fits {budget.params:,} parameters: the smallest one searched "
            f"({budget.min_layers} layers, d_model {d_model}, vocab {budget.padded_vocab:,}) "
            f"already has {smallest:,}; raise params or use a smaller vocab."
        )
    return (
        f"No model shape has between {budget.floor:.0%} and 100% of {budget.params:,} "
        f"parameters within {budget.min_layers}..{budget.max_layers} layers and d_model a "
        f"multiple of {budget.width_multiple}; lower floor or raise max_layers."
    )
