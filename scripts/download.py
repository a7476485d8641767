"""Fetch what preparation needs from the network: the fastText language-id model and hub corpora.

    python scripts/download.py lid                      # data/lid.176.ftz (~917 kB)
    python scripts/download.py data=tinystories         # the corpus into the HF datasets cache

A corpus fetched this way is read from the cache with `data.source.streaming=false`. Offline,
each step fails with one sentence.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parrot_lm.core.cli import exit_on_user_error  # noqa: E402
from parrot_lm.core.errors import DataError  # noqa: E402

LID_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.ftz"
LID_SHA256: str | None = None  # not published by fastText; the download prints it


def download_file(url: str, dest: Path, sha256: str | None = None) -> str:
    """Download to a temporary name, check the checksum if known, rename: never a half file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            while block := response.read(1 << 20):
                f.write(block)
                digest.update(block)
    except (urllib.error.URLError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"Could not download {url} ({e}); check the network and try again.") from e
    if sha256 is not None and digest.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{url} has sha256 {digest.hexdigest()}, expected {sha256}.")
    os.replace(tmp, dest)
    return digest.hexdigest()


def download_corpus(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=.", *overrides])
    source = OmegaConf.to_container(cfg.data.source, resolve=True)
    if source.get("kind") != "hub":
        raise DataError(f"data={cfg.data.name} is not a hub corpus; nothing to download.")
    import datasets

    try:
        datasets.load_dataset(source["name"], source.get("config"), split=source["split"])
    except Exception as e:
        raise DataError(
            f"Could not download hub dataset {source['name']!r} ({type(e).__name__}); check the "
            "network and the dataset name."
        ) from e
    print(
        f"cached {source['name']} ({source['split']}); prepare it with "
        f"data.source.streaming=false to read the cache"
    )


@exit_on_user_error
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="+", help="`lid` and/or Hydra overrides such as data=c4")
    parser.add_argument("--dest", type=Path, default=ROOT / "data" / "lid.176.ftz")
    args = parser.parse_args(argv)
    overrides = [w for w in args.what if w != "lid"]
    if "lid" in args.what:
        sha = download_file(LID_URL, args.dest, LID_SHA256)
        print(f"downloaded {args.dest} (sha256 {sha})")
    if overrides:
        download_corpus(overrides)


if __name__ == "__main__":
    main(sys.argv[1:])
