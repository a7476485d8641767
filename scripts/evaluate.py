"""Perplexity of a checkpoint: `python scripts/evaluate.py ckpt=<run dir> [eval_set=...]`.

Sliding windows of the model's context moved by `stride`, every token scored once; prints and
writes loss, perplexity and bits per byte as JSON beside the checkpoint. Installed as
`parrot-evaluate`; the logic lives in parrot_lm/evaluation/cli.py.
"""

from parrot_lm.evaluation.cli import main

if __name__ == "__main__":
    main()
