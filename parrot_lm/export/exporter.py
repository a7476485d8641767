"""Export a trained checkpoint for use outside ParrotLM: `hf` (export/hf.py) or `safetensors`
(export/safetensors.py).

Exports are written to a temporary sibling directory and renamed into place (core/io.py's
atomic_dir), so the output is complete or absent, never half written. Each export dir holds
EXPORT_MARKER; `force=true` replaces a dir only when it holds one (check_out_dir).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import torch

from parrot_lm.core.errors import ConfigError, ExportError
from parrot_lm.core.io import atomic_dir
from parrot_lm.export.hf import TRANSFORMERS_HINT, check_llama_compatible, write_hf
from parrot_lm.export.safetensors import write_safetensors
from parrot_lm.runs.loading import find_tokenizer_dir, load_model, resolve_checkpoint
from parrot_lm.runs.run_dir import RunDir, run_within

log = logging.getLogger(__name__)

FORMATS = ("hf", "safetensors")
# Written into every export dir: what force=true may replace (and nothing else).
EXPORT_MARKER = ".parrot-export.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_out_dir(ckpt_path: Path, fmt: str) -> Path:
    """`<run dir>/export/<format>`; the run dir holds `checkpoints/` (or the .ckpt itself)."""
    return RunDir.of_checkpoint(ckpt_path).export(fmt)


def check_out_dir(out: Path, force: bool, ckpt_path: Path | None = None) -> None:
    """Refuse, before anything is written, an `out` that an export must not replace.

    `force` replaces an earlier export only (a dir holding EXPORT_MARKER): never a run dir,
    never a dir holding the checkpoint being exported, never any other non-empty dir.
    """
    if out.exists() and not out.is_dir():
        raise ExportError(f"Export path {out} is a file, not a directory; choose another out=.")
    if ckpt_path is not None and out.resolve() in Path(ckpt_path).resolve().parents:
        raise ExportError(
            f"out={out} holds the checkpoint being exported ({ckpt_path}); an export never "
            "replaces its own run, so choose another out= (the default is <run>/export/<format>)."
        )
    if not out.is_dir() or not any(out.iterdir()):
        return
    if RunDir(out).is_run():
        raise ExportError(
            f"out={out} is a run dir (checkpoints, logs, run config); an export never replaces "
            "a run, so choose another out= (the default is <run>/export/<format>)."
        )
    if not (out / EXPORT_MARKER).is_file():
        raise ExportError(
            f"Export directory {out} is not empty and is not an earlier export (it has no "
            f"{EXPORT_MARKER}); choose another out= (force=true only replaces an earlier export)."
        )
    inside = run_within(out)
    if inside is not None:
        raise ExportError(
            f"Export directory {out} holds a run or checkpoint ({inside}); move it out of the "
            "way or choose another out=."
        )
    if not force:
        raise ExportError(
            f"Export directory {out} already exists and is not empty; pass force=true to "
            "replace it, or choose another out=."
        )


def export_checkpoint(
    ckpt: str | Path,
    out: str | Path | None = None,
    fmt: str = "hf",
    force: bool = False,
    dtype: str = "float32",
    tokenizer_dir: str | Path | None = None,
    outputs_dir: str | Path = "outputs",
) -> Path:
    """Export a checkpoint (or run dir, run name, `latest`: runs/loading.py resolve_checkpoint,
    looking in `outputs_dir`) and return the output directory."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    if fmt == "hf" and importlib.util.find_spec("transformers") is None:
        raise ExportError(TRANSFORMERS_HINT)
    ckpt_path = resolve_checkpoint(ckpt, outputs_dir)
    out_dir = Path(out).expanduser() if out else default_out_dir(ckpt_path, fmt)
    check_out_dir(out_dir, force, ckpt_path)
    tok_dir = Path(tokenizer_dir).expanduser() if tokenizer_dir else find_tokenizer_dir(ckpt_path)
    loaded = load_model(ckpt_path, tokenizer_dir=tok_dir)
    if fmt == "hf":  # before anything is written
        check_llama_compatible(loaded.model.cfg)
    log.info("Exporting %s (step %d) as %s to %s", ckpt_path, loaded.step, fmt, out_dir)
    with atomic_dir(out_dir) as tmp:
        if fmt == "hf":
            write_hf(loaded, tmp, DTYPES[dtype])
        else:
            write_safetensors(loaded, tok_dir, tmp, DTYPES[dtype])
        marker = {"format": fmt, "dtype": dtype, "checkpoint": str(ckpt_path), "step": loaded.step}
        (tmp / EXPORT_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return out_dir
