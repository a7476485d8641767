"""Prepare a corpus without training: `python scripts/prepare.py data=local data.source.path=x`.

Takes the same config tree and overrides as train.py, plus `--force` (rebuild even when a valid
artifact exists) and `--verify` (check every shard's sha256 against meta.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parrot_lm.core.cli import compose_config, exit_on_user_error  # noqa: E402
from parrot_lm.core.errors import DataError  # noqa: E402
from parrot_lm.data.prepare import prepare_corpus  # noqa: E402
from parrot_lm.data.shards import read_meta, verify_shards  # noqa: E402

FILTER_REPORT_KEYS = ("docs_in", "docs_out", "tokens_in", "tokens_out", "removed")


@exit_on_user_error
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=local")
    parser.add_argument("--force", action="store_true", help="rebuild even if valid")
    parser.add_argument("--verify", action="store_true", help="check shard checksums")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = compose_config(str(ROOT / "conf"), "train", ["paths.output_dir=.", *args.overrides])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data_dir = Path(data["data_dir"])
    if data["source"] is not None:
        meta = prepare_corpus(
            data_dir,
            data["source"],
            data["tokenizer"],
            data["val_fraction"],
            force=args.force,
            filters=data.get("filters"),
            val_source=data.get("val_source"),
        )
    elif args.force:
        raise DataError("--force needs a data config with a source to rebuild from.")
    else:
        meta = read_meta(data_dir)
    if args.verify:
        bad = verify_shards(data_dir, read_meta(data_dir))
        if bad:
            raise DataError(
                f"Checksum mismatch in {data_dir}: {', '.join(bad)}; rebuild with --force."
            )
        print(f"verified: every shard in {data_dir} matches meta.json")
    summary = {
        name: {k: v for k, v in split.items() if k != "shards"}
        for name, split in meta["splits"].items()
    }
    report = {
        "data_dir": str(data_dir),
        "vocab_size": meta["vocab_size"],
        "filters": {
            f["name"]: {k: f[k] for k in FILTER_REPORT_KEYS if k in f}
            for f in meta.get("filters", [])
        },
        **summary,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
