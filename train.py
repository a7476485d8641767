"""Train a ParrotLM model: `python train.py model=deep_narrow trainer.precision=bf16-mixed`."""

from parrot_lm.training.cli import main

if __name__ == "__main__":
    main()
