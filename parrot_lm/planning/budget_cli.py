"""`parrot-budget params=40e6 [vocab=50257] [context=1024] [top=20] [write=<yaml> [pick=N]]`.

Prints the shapes that fit a parameter budget (parrot_lm/planning/budget.py says which and in
what order) and, with `write=`, saves one of them as a conf/model file that train.py composes
with `model=<name>`. Arguments are key=value, like the other scripts' Hydra overrides.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

from parrot_lm.core.cli import exit_on_user_error
from parrot_lm.core.errors import ConfigError
from parrot_lm.core.io import atomic_write_text
from parrot_lm.planning.budget import Budget, Shape, solve

# key=value name -> Budget field (the short names read like the command line).
BUDGET_KEYS = {"params": "params", "vocab": "vocab_size", "context": "context_length"}
BUDGET_KEYS |= {f.name: f.name for f in fields(Budget) if f.name not in BUDGET_KEYS.values()}
OUTPUT_KEYS = ("top", "write", "pick", "force")
SUFFIXES = {"k": 10**3, "m": 10**6, "b": 10**9}


def parse_count(key: str, text: str) -> int:
    """`40e6`, `40M`, `40_000_000` -> 40000000; anything not a whole number is refused."""
    scale = SUFFIXES.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise ConfigError(
            f"{key} must be a whole number such as 40e6 or 40M, got {text!r}."
        ) from None
    if not value.is_integer():
        raise ConfigError(f"{key} must be a whole number, got {text!r}.")
    return int(value)


def parse_bool(key: str, text: str) -> bool:
    """`true`/`false` (any case), as Hydra spells booleans."""
    if text.lower() not in ("true", "false"):
        raise ConfigError(f"{key} must be true or false, got {text!r}.")
    return text.lower() == "true"


def parse_args(argv: list[str]) -> tuple[Budget, dict]:
    """key=value arguments -> the Budget and the output options (top, write, pick, force)."""
    budget: dict = {}
    output: dict = {"top": 20, "write": None, "pick": 1, "force": False}
    types = {f.name: f.type for f in fields(Budget)}
    for arg in argv:
        key, sep, text = arg.partition("=")
        if not sep or not text:
            raise ConfigError(f"Arguments are key=value (e.g. params=40e6), got {arg!r}.")
        if key in BUDGET_KEYS:
            name = BUDGET_KEYS[key]
            kind = types[name]
            if kind == "bool":
                budget[name] = parse_bool(key, text)
            elif kind == "float":
                budget[name] = parse_number(key, text)
            else:
                budget[name] = parse_count(key, text)
        elif key in OUTPUT_KEYS:
            output[key] = parse_bool(key, text) if key == "force" else text
        else:
            known = ", ".join([*BUDGET_KEYS, *OUTPUT_KEYS])
            raise ConfigError(f"Unknown argument {key!r}; the arguments are {known}.")
    if "params" not in budget:
        raise ConfigError("Give the parameter budget, e.g. params=40e6.")
    output["top"] = parse_count("top", str(output["top"]))
    output["pick"] = parse_count("pick", str(output["pick"]))
    return Budget(**budget), output


def parse_number(key: str, text: str) -> float:
    """A float argument (floor=0.75)."""
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {text!r}.") from None


def table(shapes: list[Shape], budget: Budget, top: int) -> str:
    """The first `top` shapes as an aligned text table, with the count of all of them."""
    head = ("rank", "layers", "d_model", "heads", "kv_heads", "head_dim", "d_ff", "params", "%")
    rows = [
        (
            str(rank),
            str(s.n_layers),
            str(s.d_model),
            str(s.n_heads),
            str(s.n_kv_heads),
            str(s.head_dim),
            str(s.d_ff),
            f"{s.params:,}",
            f"{100 * s.params / budget.params:.1f}",
        )
        for rank, s in enumerate(shapes[:top], start=1)
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
        for row in [head, *rows]
    ]
    tied = "tied" if budget.tie_embeddings else "untied"
    lines.append(
        f"{len(shapes)} shapes fit {budget.params:,} parameters ({tied} embeddings, vocab "
        f"{budget.padded_vocab:,}, context {budget.context_length}); showing {len(rows)}."
    )
    return "\n".join(lines)


def model_yaml(shape: Shape, budget: Budget, rank: int) -> str:
    """A conf/model file in conf/model/deep_narrow.yaml's form: tiny's defaults, then the shape.

    vocab_size stays tiny's null (taken from the data's tokenizer), as in deep_narrow.yaml; the
    comment says which vocab the count assumes, since a different tokenizer changes it.
    """
    kv = "null" if shape.n_kv_heads == shape.n_heads else str(shape.n_kv_heads)
    lines = [
        f"# Budget solver rank {rank} for {budget.params:,} parameters: exactly "
        f"{shape.params:,} with a {budget.vocab_size:,}-token vocab.",
        "defaults:",
        "  - tiny",
        "  - _self_",
        f"context_length: {budget.context_length}",
        f"d_model: {shape.d_model}",
        f"n_layers: {shape.n_layers}",
        f"n_heads: {shape.n_heads}",
        f"n_kv_heads: {kv}",
        f"d_ff: {shape.d_ff}",
        f"tie_embeddings: {str(shape.tie_embeddings).lower()}",
    ]
    if budget.vocab_multiple != 1:
        lines.append(f"vocab_multiple: {budget.vocab_multiple}")
    return "\n".join(lines) + "\n"


def write_shape(path: Path, shapes: list[Shape], budget: Budget, pick: int, force: bool) -> None:
    """Write shape number `pick` (1-based rank) to `path`, refusing to replace a file silently."""
    if not 1 <= pick <= len(shapes):
        raise ConfigError(f"pick must be a rank from 1 to {len(shapes)}, got {pick}.")
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"write must name a .yaml file (e.g. conf/model/my40m.yaml), got {path}.")
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; choose another name or add force=true.")
    atomic_write_text(path, model_yaml(shapes[pick - 1], budget, pick))


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """Print the ranked shapes; with write=, save the picked one (argv default: sys.argv[1:])."""
    budget, output = parse_args(sys.argv[1:] if argv is None else list(argv))
    shapes = solve(budget)
    print(table(shapes, budget, output["top"]))
    if output["write"]:
        path = Path(output["write"])
        write_shape(path, shapes, budget, output["pick"], output["force"])
        print(f"wrote rank {output['pick']} to {path}: use it with model={path.stem}")
