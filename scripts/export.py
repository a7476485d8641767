"""Export a checkpoint: `python scripts/export.py ckpt=<run dir or .ckpt> [format=hf|safetensors]`.

Options (Hydra overrides of conf/export.yaml): out=<dir> (default <run dir>/export/<format>),
force=true (replace a non-empty out), dtype=float32|bfloat16|float16, tokenizer_dir=<dir>.
Installed as `parrot-export`; the logic lives in parrot_lm/export/cli.py.
"""

from parrot_lm.export.cli import main

if __name__ == "__main__":
    main()
