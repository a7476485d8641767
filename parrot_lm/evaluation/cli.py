"""Perplexity of a checkpoint: `parrot-evaluate ckpt=<run dir> [eval_set=...]`.

Sliding windows of the model's context moved by `stride`, every token scored once; prints and
writes loss, token perplexity, bits per byte and word-level perplexity as JSON beside the
checkpoint (or to `output=`). A result place that cannot be written is refused before any
scoring, and the JSON is printed before it is written, so a write that fails after all loses
nothing.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from parrot_lm.core.cli import CONF_DIR, ckpt_alias, compose_config, exit_on_user_error, require
from parrot_lm.core.errors import ConfigError, StorageError
from parrot_lm.core.io import atomic_write_text, check_writable

log = logging.getLogger("parrot_lm.evaluation.perplexity")
OUTPUT_HINT = "with output=<file.json>"


def _with_output_hint(error: StorageError, more: str = "") -> StorageError:
    """`error`'s sentence (`Cannot write P (why); ... choose another place.`) saying how to
    choose that place: the `output=` key, which the default result path does not show."""
    return StorageError(f"{str(error).rstrip('.')} {OUTPUT_HINT}{more}.")


def check_output(out: Path) -> None:
    """Refuse, before any scoring, a result path that cannot be written: a directory, or one
    whose directory cannot be made or written (StorageError naming `output=`)."""
    if out.is_dir():
        raise ConfigError(
            f"output={out} is a directory; give a file path, e.g. output={out / 'result.json'}."
        )
    blocking = next((p for p in out.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise ConfigError(f"output={out} is inside {blocking}, a file; give a path in a directory.")
    try:
        # The file is replaced by a rename, so its directory is what must be writable; a path
        # not there yet is checked through its nearest existing parent, and named itself.
        check_writable(out.parent if out.exists() else out)
    except StorageError as e:
        raise _with_output_hint(e) from e


def write_result(out: Path, result: dict) -> None:
    """Print `result` as JSON on stdout, then write it to `out`: the scores are on stdout even
    when the write fails (StorageError saying so)."""
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    try:
        atomic_write_text(out, text + "\n")
    except StorageError as e:
        raise _with_output_hint(e, " (the scores are on stdout above)") from e
    log.info("Wrote %s", out)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """`parrot-evaluate ckpt=<run dir> [overrides]` (argv default: sys.argv[1:])."""
    argv = ckpt_alias(sys.argv[1:] if argv is None else list(argv))
    cfg = compose_config(str(CONF_DIR), "evaluate", argv)
    require(cfg, "ckpt")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from omegaconf import OmegaConf

    from parrot_lm.config.schema import validate_evaluate_config
    from parrot_lm.core.hardware import pick_device, reuse_freed_memory
    from parrot_lm.evaluation.perplexity import (
        evaluate_perplexity,
        load_eval_tokens,
        token_byte_lengths,
    )
    from parrot_lm.runs.loading import load_model
    from parrot_lm.runs.run_dir import RunDir

    cfg = validate_evaluate_config(cfg)  # stride, batch_size, max_tokens: in range
    eval_set = OmegaConf.to_container(cfg.eval_set, resolve=True)
    device = pick_device(cfg.device)
    if device.type == "cpu":  # each batch's logits would page-fault anew (core.hardware)
        reuse_freed_memory()
    loaded = load_model(cfg.ckpt, device, cfg.tokenizer_dir, cfg.outputs_dir)
    context = loaded.model.cfg.context_length
    stride = cfg.stride if cfg.stride is not None else max(1, context // 2)
    if not 1 <= stride <= context:
        raise ConfigError(
            f"stride must be between 1 and the model's context ({context}), got {stride}."
        )
    run_dir = RunDir.of_checkpoint(loaded.path)
    out = (
        Path(cfg.output).expanduser()
        if cfg.output
        else run_dir.eval_result(loaded.path, eval_set["name"], stride)
    )
    check_output(out)  # before the tokens are read and scored: that can take minutes
    tokens = load_eval_tokens(eval_set, loaded.tokenizer, loaded.path, cfg.max_tokens)
    log.info(
        "Scoring %s tokens of %s with %s (step %d), stride %d",
        f"{len(tokens):,}",
        eval_set["name"],
        loaded.path,
        loaded.step,
        stride,
    )
    result = evaluate_perplexity(
        loaded.model,
        tokens,
        stride,
        cfg.batch_size,
        byte_lengths=token_byte_lengths(loaded.tokenizer),
        progress=True,
        tokenizer=loaded.tokenizer,
    )
    result = {
        "checkpoint": str(loaded.path),
        "step": loaded.step,
        "eval_set": eval_set["name"],
        **result,
    }
    write_result(out, result)
