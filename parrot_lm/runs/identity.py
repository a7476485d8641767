"""What a run depends on, recorded in every checkpoint so that every later stage can check it.

A run's weights mean something only with the tokenizer they were trained with, and a resumed
run continues only on the data it started on. Training records, in the checkpoint's
hyperparameters (`identity`), three digests:

- `tokenizer_sha256`: the vocabulary itself (every token's bytes, in id order, and the EOT id),
  so the same vocabulary matches whatever files or names it was loaded from;
- `data_sha256`: the prepared corpus's content (the sha256 of every shard, as meta.json lists them);
- `data_config_hash`: the preparation config's hash (meta.json `config_hash`), for the message.

`parrot-train resume=...` checks the data and the tokenizer; evaluate, generate, export and chat
check the run's tokenizer (runs/loading.py), and evaluating on a prepared split checks its
tokenizer. A checkpoint saved before identities were recorded is not checked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from parrot_lm.core.errors import CheckpointError, ParrotError
from parrot_lm.data.tokenizer import SPEC_FILE, load_tokenizer_dir, save_tokenizer_dir
from parrot_lm.runs.run_dir import RunDir

IDENTITY_KEY = "identity"


def vocabulary_sha256(tokenizer: Any) -> str:
    """The sha256 (hex) of a tokenizer's vocabulary: n_vocab, the EOT id, then each token id's
    bytes (length-prefixed) in id order. Ids with no token (holes) count as empty.

    tokenizer: a `tiktoken.Encoding` or anything with `n_vocab`, `eot_token` and `decode_bytes`.
    """
    digest = hashlib.sha256()
    digest.update(f"{tokenizer.n_vocab}:{tokenizer.eot_token}:".encode())
    single = getattr(tokenizer, "decode_single_token_bytes", None)
    for i in range(tokenizer.n_vocab):
        try:
            token = single(i) if single is not None else tokenizer.decode_bytes([i])
        except (KeyError, ValueError, IndexError):
            token = b""
        digest.update(len(token).to_bytes(4, "little"))
        digest.update(token)
    return digest.hexdigest()


def data_sha256(meta: dict[str, Any]) -> str:
    """The sha256 (hex) of a prepared corpus's content: its splits' shard digests, in order."""
    digest = hashlib.sha256()
    for name in sorted(meta["splits"]):
        for shard in meta["splits"][name]["shards"]:
            digest.update(f"{name}:{shard['sha256']}\n".encode())
    return digest.hexdigest()


def run_identity(meta: dict[str, Any], tokenizer: Any) -> dict[str, str]:
    """What training records in its checkpoints: the data's and the tokenizer's digests."""
    return {
        "data_config_hash": str(meta.get("config_hash")),
        "data_sha256": data_sha256(meta),
        "tokenizer_sha256": vocabulary_sha256(tokenizer),
    }


def recorded_identity(ckpt: dict[str, Any]) -> dict[str, str] | None:
    """The identity a checkpoint recorded, or None for one saved before identities were kept."""
    return ckpt.get("hyper_parameters", {}).get(IDENTITY_KEY) or None


def check_tokenizer(ckpt: dict[str, Any], ckpt_path: Path, tokenizer: Any, where: Path) -> None:
    """Refuse a tokenizer (loaded from `where`) whose vocabulary is not the checkpoint's.

    Raises CheckpointError naming both places.
    """
    recorded = recorded_identity(ckpt)
    if recorded is None or "tokenizer_sha256" not in recorded:
        return
    if vocabulary_sha256(tokenizer) != recorded["tokenizer_sha256"]:
        raise CheckpointError(
            f"The tokenizer in {where} is not the one {ckpt_path} was trained with (its "
            "vocabulary differs); use the run's own tokenizer/ folder."
        )


def check_data(
    ckpt: dict[str, Any], ckpt_path: Path, identity: dict[str, str], data_dir: Path
) -> None:
    """Refuse to continue the checkpoint's training on other data or another tokenizer than it
    started with. `identity`: run_identity() of the data in `data_dir`.

    Raises CheckpointError naming the data dir and what differs.
    """
    recorded = recorded_identity(ckpt)
    if recorded is None:
        return
    if recorded.get("tokenizer_sha256") not in (None, identity["tokenizer_sha256"]):
        raise CheckpointError(
            f"The data in {data_dir} was tokenized with another vocabulary than {ckpt_path} was "
            "trained with; resume on the run's own data, or start a new run on this data."
        )
    if recorded.get("data_sha256") not in (None, identity["data_sha256"]):
        how = (
            "the same preparation config, so its source files changed"
            if recorded.get("data_config_hash") == identity["data_config_hash"]
            else f"config {identity['data_config_hash']}, the run's was "
            f"{recorded.get('data_config_hash')}"
        )
        raise CheckpointError(
            f"The data in {data_dir} is not the corpus {ckpt_path} was trained on (prepared with "
            f"{how}); resume on the run's own data, or start a new run on this data."
        )


def save_run_tokenizer(
    run_dir: RunDir, spec: dict[str, Any], data_dir: Path, identity: dict[str, str]
) -> None:
    """Copy the data's tokenizer (meta.json's `tokenizer` entry `spec` and its files in
    `data_dir`) into the run dir, unless the run's copy already holds this vocabulary: a resume
    leaves its run's tokenizer as it is."""
    if (run_dir.tokenizer / SPEC_FILE).is_file():
        try:
            held = vocabulary_sha256(load_tokenizer_dir(run_dir.tokenizer))
        except (ParrotError, OSError, ValueError):  # a damaged copy is replaced
            held = None
        if held == identity["tokenizer_sha256"]:
            return
    save_tokenizer_dir(spec, data_dir, run_dir.tokenizer)
