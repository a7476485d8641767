"""Export a checkpoint: `parrot-export ckpt=<run dir or .ckpt> [format=hf|safetensors]`.

Options (Hydra overrides of conf/export.yaml): out=<dir> (default <run dir>/export/<format>),
force=true (replace an earlier export, and nothing else), dtype=float32|bfloat16|float16,
tokenizer_dir=<dir>.
Prints the output directory on success.
"""

from __future__ import annotations

import logging
import sys

from parrot_lm.core.cli import CONF_DIR, ckpt_alias, compose_config, exit_on_user_error
from parrot_lm.core.errors import ConfigError

USAGE = "parrot-export ckpt=<run dir or .ckpt file> [format=hf|safetensors]"


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """`parrot-export ckpt=<...> [overrides]` (argv default: sys.argv[1:])."""
    argv = ckpt_alias(sys.argv[1:] if argv is None else list(argv))
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        return
    from omegaconf import OmegaConf

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = compose_config(str(CONF_DIR), "export", argv)
    if OmegaConf.is_missing(cfg, "ckpt"):
        raise ConfigError(f"Say which checkpoint to export: {USAGE}.")
    from parrot_lm.export.exporter import (
        export_checkpoint,  # torch and lightning: after the cheap checks
    )

    out = export_checkpoint(
        str(cfg.ckpt),
        out=cfg.out,
        fmt=cfg.format,
        force=bool(cfg.force),
        dtype=cfg.dtype,
        tokenizer_dir=cfg.tokenizer_dir,
        outputs_dir=cfg.outputs_dir,
    )
    print(out)
