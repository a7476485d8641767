"""Export a checkpoint: `python scripts/export.py ckpt=<run dir or .ckpt> [format=hf|safetensors]`.

Options (Hydra overrides of conf/export.yaml): out=<dir> (default <run dir>/export/<format>),
force=true (replace a non-empty out), dtype=float32|bfloat16|float16, tokenizer_dir=<dir>.
Prints the output directory on success.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parrot_lm.core.cli import compose_config, exit_on_user_error  # noqa: E402
from parrot_lm.core.errors import ConfigError  # noqa: E402

USAGE = "python scripts/export.py ckpt=<run dir or .ckpt file> [format=hf|safetensors]"


@exit_on_user_error
def main(argv: list[str]) -> None:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = compose_config(str(ROOT / "conf"), "export", argv)
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
    )
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
