"""Load a trained checkpoint for inference: the plain-torch GPT and the tokenizer it was trained
with (saved by training in `<run dir>/tokenizer/`, beside `<run dir>/checkpoints/`).

"Which checkpoint" is answered here once, for evaluate, generate, export, chat and training's
ckpt_path (`resolve_checkpoint`): a .ckpt file, a run dir, a run name under `<outputs>/runs`
(or `<outputs>/multiruns`), or `latest`; any of these but a file may end in `:best` (the run's
best.ckpt) or `:last` (its last.ckpt).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from parrot_lm.core.errors import CheckpointError
from parrot_lm.data.tokenizer import SPEC_FILE, Tokenizer, load_tokenizer_dir
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.runs.checkpoints import load_checkpoint
from parrot_lm.runs.identity import check_tokenizer
from parrot_lm.runs.run_dir import (
    BEST,
    CHECKPOINTS,
    LAST,
    LATEST,
    MULTIRUNS,
    RUN_CONFIG,
    RUNS,
    RunDir,
)

MODEL_PREFIX = "model."  # LitLM keeps the GPT as `self.model`
RUN_FILES = {"best": BEST, "last": LAST}  # ckpt=<run>:best, ckpt=<run>:last


@dataclass
class LoadedModel:
    model: GPT
    tokenizer: Tokenizer
    path: Path
    step: int
    model_config: dict[str, Any]


def resolve_checkpoint(spec: str | Path, outputs_dir: str | Path = "outputs") -> Path:
    """The checkpoint `spec` names: a .ckpt file; a run dir or checkpoints dir (its last.ckpt,
    else its highest step file); `latest` (`latest_checkpoint`); or a run name, a path under
    `<outputs_dir>/runs` or `<outputs_dir>/multiruns` (`name=` of train.py); any of these but a
    file followed by `:best` or `:last` for that run's best.ckpt or last.ckpt. CheckpointError
    with the newest run names when it names nothing."""
    text = str(spec)
    outputs = Path(outputs_dir).expanduser()
    run_part, colon, which = text.rpartition(":")
    # A path that exists as spelled wins: ':' is a legal character in a file name.
    if colon and run_part and which in RUN_FILES and not Path(text).expanduser().exists():
        return run_file(run_part, which, outputs)
    if text == LATEST:
        return latest_checkpoint(outputs)
    path = Path(text).expanduser()
    if path.is_dir():
        return RunDir(path).resolve_checkpoint()
    if path.is_file():
        return path
    named = run_named(outputs, text)
    if named is not None:
        return RunDir(named).resolve_checkpoint()
    if colon and run_part and names_run(run_part, outputs):
        raise unknown_suffix(text, run_part, which)
    if path.suffix == ".ckpt":
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    newest = ", ".join(run_names(outputs)[:5]) or f"none yet under {outputs / RUNS}"
    raise CheckpointError(
        f"Checkpoint {path} does not exist, and no run under {outputs} is called {text}; the "
        f"newest runs: {newest} (or ckpt=latest)."
    )


def run_file(spec: str, which: str, outputs: Path) -> Path:
    """`<spec>:best` / `<spec>:last`: that file of the run `spec` names (a run dir, its
    checkpoints dir, a run name, or `latest`); CheckpointError in one sentence when the run
    has none."""
    if spec == LATEST:
        run = RunDir.of_checkpoint(latest_checkpoint(outputs))
    else:
        path = Path(spec).expanduser()
        named = path if path.is_dir() else run_named(outputs, spec)
        if named is None:
            newest = ", ".join(run_names(outputs)[:5]) or f"none yet under {outputs / RUNS}"
            raise CheckpointError(
                f"ckpt={spec}:{which} names no run dir, and no run under {outputs} is called "
                f"{spec}; the newest runs: {newest}."
            )
        run = RunDir(named.parent) if named.name == CHECKPOINTS else RunDir(named)
    found = run.checkpoints / RUN_FILES[which]
    if not found.is_file():
        why = " (written when a validation lowers the val loss)" if which == "best" else ""
        raise CheckpointError(
            f"Run {run.path} has no {RUN_FILES[which]}{why}; use ckpt={spec} for its newest "
            "checkpoint."
        )
    return found


def names_run(spec: str, outputs: Path) -> bool:
    """Whether `spec` names a run as the part before `:best`/`:last` may: `latest`, a dir (a
    run dir or its checkpoints dir), or a run name under `outputs`."""
    return (
        spec == LATEST or Path(spec).expanduser().is_dir() or run_named(outputs, spec) is not None
    )


def unknown_suffix(text: str, run_part: str, which: str) -> CheckpointError:
    """The sentence for `<run>:<which>` where the run exists but `which` is no RUN_FILES key
    (`run:bestt`): naming the suffix beats "no run is called run:bestt", which hides that the
    run was found."""
    close = difflib.get_close_matches(which, RUN_FILES, n=1)
    hint = f" (did you mean :{close[0]}?)" if close else ""
    return CheckpointError(
        f"ckpt={text}: unknown checkpoint suffix '{which}'{hint}; use {run_part}:best or "
        f"{run_part}:last, {run_part} alone for its newest checkpoint, or the path of one of "
        "its .ckpt files."
    )


def run_named(outputs: Path, name: str) -> Path | None:
    """`<outputs>/runs/<name>` (or `<outputs>/multiruns/<name>`, a sweep job) when it is a dir;
    a name leaving `outputs` (`..`, an absolute path) is none."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        return None
    for kind in (RUNS, MULTIRUNS):
        candidate = outputs / kind / name
        if candidate.is_dir():
            return candidate
    return None


def run_dirs(outputs: Path) -> list[Path]:
    """Every run (and sweep job) dir under `outputs`, newest first by its start time (the
    mtime of its run_config.yaml, written when training starts); hidden dirs skipped."""
    if not outputs.is_dir():
        return []
    found = [
        p.parent
        for p in outputs.rglob(RUN_CONFIG)
        if not any(part.startswith(".") for part in p.relative_to(outputs).parts)
    ]
    return sorted(found, key=lambda p: (-(p / RUN_CONFIG).stat().st_mtime, str(p)))


def run_names(outputs: Path) -> list[str]:
    """The names `ckpt=` takes for the runs under `<outputs>/runs` that hold a checkpoint
    (not a run starting now), newest first."""
    root = outputs / RUNS
    return [
        p.relative_to(root).as_posix()
        for p in run_dirs(outputs)
        if p.is_relative_to(root) and RunDir(p).checkpoint_candidates()
    ]


def latest_checkpoint(outputs: Path) -> Path:
    """`ckpt=latest`: of the runs under `outputs` that did not fail (no FAILED marker), the one
    whose checkpoint file was written last (file mtime), and of it the file `ckpt=<run dir>`
    picks (last.ckpt, else the highest step)."""
    newest: tuple[float, Path] | None = None
    for run in run_dirs(outputs):
        run_dir = RunDir(run)
        if run_dir.is_failed():
            continue
        for ckpt in run_dir.checkpoint_candidates():
            mtime = ckpt.stat().st_mtime
            if newest is None or mtime > newest[0]:
                newest = (mtime, run)
    if newest is None:
        raise CheckpointError(
            f"ckpt=latest found no checkpoint of a run that did not fail under {outputs}; train "
            "one first, or set outputs_dir=<dir> (or ckpt=<run dir or .ckpt file>)."
        )
    return RunDir(newest[1]).resolve_checkpoint()


def find_tokenizer_dir(ckpt_path: Path) -> Path:
    """The run's tokenizer dir of a checkpoint (`<run>/tokenizer`), checked to hold one."""
    tok_dir = RunDir.of_checkpoint(ckpt_path).tokenizer
    if (tok_dir / SPEC_FILE).is_file():
        return tok_dir
    raise CheckpointError(
        f"No tokenizer next to {ckpt_path} (looked for {tok_dir / SPEC_FILE}); training saves one "
        "in the run dir, so copy the run's tokenizer/ folder along with the checkpoint, or pass "
        "tokenizer_dir=<path>."
    )


def model_state_dict(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The GPT's own weights from a Lightning checkpoint (LitLM's `model.` prefix removed)."""
    return {
        k[len(MODEL_PREFIX) :]: v
        for k, v in ckpt["state_dict"].items()
        if k.startswith(MODEL_PREFIX)
    }


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    tokenizer_dir: str | Path | None = None,
    outputs_dir: str | Path = "outputs",
) -> LoadedModel:
    """Checkpoint (or run dir, run name, `latest`: resolve_checkpoint) -> GPT in eval mode on
    `device`, and its tokenizer (checked to be the vocabulary the checkpoint was trained with,
    runs/identity.py)."""
    ckpt_path = resolve_checkpoint(path, outputs_dir)
    ckpt = load_checkpoint(ckpt_path)
    tok_dir = Path(tokenizer_dir) if tokenizer_dir else find_tokenizer_dir(ckpt_path)
    tokenizer = load_tokenizer_dir(tok_dir)
    check_tokenizer(ckpt, ckpt_path, tokenizer, tok_dir)
    model_cfg = dict(ckpt["hyper_parameters"]["model"])
    model = GPT(GPTConfig(**model_cfg))
    try:
        model.load_state_dict(model_state_dict(ckpt))
    except RuntimeError as e:
        raise CheckpointError(f"Checkpoint {ckpt_path} does not match its own model config.") from e
    if tokenizer.n_vocab > model.cfg.vocab_size:
        raise CheckpointError(
            f"The tokenizer in {tok_dir} has {tokenizer.n_vocab} tokens but the model in "
            f"{ckpt_path} only {model.cfg.vocab_size}; they do not belong together."
        )
    model.to(device).eval()
    return LoadedModel(model, tokenizer, ckpt_path, int(ckpt.get("global_step", 0)), model_cfg)
