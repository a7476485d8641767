"""Perplexity of a checkpoint: `parrot-evaluate ckpt=<run dir> [eval_set=...]`.

Sliding windows of the model's context moved by `stride`, every token scored once; prints and
writes loss, token perplexity, bits per byte and word-level perplexity as JSON beside the
checkpoint.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from parrot_lm.core.cli import CONF_DIR, ckpt_alias, compose_config, exit_on_user_error, require

log = logging.getLogger("parrot_lm.evaluation.perplexity")


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """`parrot-evaluate ckpt=<run dir> [overrides]` (argv default: sys.argv[1:])."""
    argv = ckpt_alias(sys.argv[1:] if argv is None else list(argv))
    cfg = compose_config(str(CONF_DIR), "evaluate", argv)
    require(cfg, "ckpt")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from omegaconf import OmegaConf

    from parrot_lm.config.schema import validate_evaluate_config
    from parrot_lm.core.errors import ConfigError
    from parrot_lm.core.hardware import pick_device, reuse_freed_memory
    from parrot_lm.core.io import atomic_write_text
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
    run_dir = RunDir.of_checkpoint(loaded.path)
    out = (
        Path(cfg.output)
        if cfg.output
        else run_dir.eval_result(loaded.path, eval_set["name"], stride)
    )
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    log.info("Wrote %s", out)
