"""Train a ParrotLM model: `python train.py model=deep_narrow trainer.precision=bf16-mixed`."""

import sys

import hydra
from omegaconf import DictConfig

from parrot_lm.core.cli import exit_on_user_error
from parrot_lm.runs.resume import check_resume_argument
from parrot_lm.training.run import run


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    exit_on_user_error(check_resume_argument)(sys.argv[1:])
    main()
