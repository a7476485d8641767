"""Fetch what preparation needs from the network: the fastText language-id model and hub corpora.

    python scripts/download.py lid                      # data/lid.176.bin (~126 MB, optional)
    python scripts/download.py data=tinystories         # the corpus into the HF datasets cache

A corpus fetched this way is read from the cache with `data.source.streaming=false`. Offline,
each step fails with one sentence. Installed as `parrot-download`; the logic lives in
parrot_lm/data/download.py.
"""

from parrot_lm.data.cli import download_main as main

if __name__ == "__main__":
    main()
