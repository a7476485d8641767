"""Prepare a corpus without training: `python scripts/prepare.py data=local data.source.path=x`.

Takes the same config tree and overrides as train.py, plus `--force` (rebuild even when a valid
artifact exists) and `--verify` (check every shard's sha256 against meta.json). Installed as
`parrot-prepare`; the logic lives in parrot_lm/data/cli.py.
"""

from parrot_lm.data.cli import main

if __name__ == "__main__":
    main()
