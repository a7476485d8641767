"""`parrot-budget params=40e6 [vocab=50257] [context=1024] [top=20] [write=<yaml> [pick=N]]`.

Prints the shapes that fit a parameter budget (parrot_lm/planning/budget.py says which and in
what order) and, with `write=`, saves one of them as a conf/model file that train.py composes
with `model=<name>`. Arguments are key=value, like the other scripts' Hydra overrides.

`write=` must name a file in the model group of the config tree train.py composes (MODEL_DIR,
which the repo's conf/model links to): train.py finds a `model=<name>` nowhere else (its
check of the command line composes the tree without Hydra's `hydra.searchpath`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from pathlib import Path

from parrot_lm.core.cli import CONF_DIR, exit_on_user_error
from parrot_lm.core.errors import ConfigError
from parrot_lm.core.io import atomic_write_text
from parrot_lm.planning.budget import Budget, Shape, solve

# key=value name -> Budget field (the short names read like the command line).
BUDGET_KEYS = {"params": "params", "vocab": "vocab_size", "context": "context_length"}
BUDGET_KEYS |= {f.name: f.name for f in fields(Budget) if f.name not in BUDGET_KEYS.values()}
OUTPUT_KEYS = ("top", "write", "pick", "force")
SUFFIXES = {"k": 10**3, "m": 10**6, "b": 10**9}
# Where `model=<name>` finds <name>.yaml: the model group of the tree train.py composes.
MODEL_DIR = CONF_DIR / "model"
# A file name that `model=<name>` can spell as it is (no spaces, commas or `=`, which Hydra's
# override grammar reads as something else).
OPTION_NAME = re.compile(r"[A-Za-z0-9_.-]+")


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
    for key in ("top", "pick"):  # row counts: a slice would take 0 or -1 without a word
        output[key] = parse_count(key, str(output[key]))
        if output[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {output[key]}.")
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


def model_dir_shown() -> str:
    """MODEL_DIR as the user would type it: `conf/model` when that is where it resolves from
    the current directory (the repo's conf/ links to the package's), else its full path."""
    return "conf/model" if Path("conf/model").resolve() == MODEL_DIR.resolve() else str(MODEL_DIR)


def check_write_path(path: Path, force: bool) -> None:
    """Refuse, before anything is solved or written, a `write=` path that train.py's
    `model=<stem>` would not find or that would replace a file without force=true.

    Raises ConfigError (one sentence) for a suffix other than .yaml/.yml, a file outside
    MODEL_DIR, a name `model=` cannot spell, or an existing file without `force`.
    """
    shown = model_dir_shown()
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"write must name a .yaml file (e.g. {shown}/my40m.yaml), got {path}.")
    # resolve(): a relative path, `..` or the conf/ link name the same directory differently.
    if path.resolve().parent != MODEL_DIR.resolve():
        raise ConfigError(
            f"write={path} is outside {shown}/, where train.py's model=<name> finds model "
            f"files; write {shown}/{path.name} instead."
        )
    if not OPTION_NAME.fullmatch(path.stem):
        raise ConfigError(
            f"write={path} has a name model= cannot spell; use letters, digits, _, - and . "
            f"only (e.g. {shown}/my40m.yaml)."
        )
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; choose another name or add force=true.")


def write_shape(path: Path, shapes: list[Shape], budget: Budget, pick: int) -> None:
    """Write shape number `pick` (1-based rank) to `path`, which `check_write_path` and
    `check_pick` have passed (main runs them before anything is printed)."""
    atomic_write_text(path, model_yaml(shapes[pick - 1], budget, pick))


def check_pick(pick: int, shapes: list[Shape]) -> None:
    """Refuse a `pick` rank that is not in the list (one ConfigError sentence)."""
    if not 1 <= pick <= len(shapes):
        raise ConfigError(f"pick must be a rank from 1 to {len(shapes)}, got {pick}.")


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """Print the ranked shapes; with write=, save the picked one (argv default: sys.argv[1:]).

    Every refusal (exit 2, one sentence) comes before the table and the file: a refused
    command prints no table and writes nothing.
    """
    budget, output = parse_args(sys.argv[1:] if argv is None else list(argv))
    path = Path(output["write"]) if output["write"] else None
    if path is not None:
        check_write_path(path, output["force"])
    shapes = solve(budget)
    if path is not None:
        check_pick(output["pick"], shapes)
    print(table(shapes, budget, output["top"]))
    if path is not None:
        write_shape(path, shapes, budget, output["pick"])
        print(f"wrote rank {output['pick']} to {path}: use it with model={path.stem}")
