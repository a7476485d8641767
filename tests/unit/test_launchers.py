"""Launcher plumbing without launching: CPU threads split between parallel jobs, one device per
job, and the SLURM and FSDP configs. The sweeps themselves: tests/e2e/test_sweeps.py."""

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from parrot_lm.training.launch import claim_device, threads_per_job
from tests.helpers import CONF_DIR


def test_threads_are_split_between_parallel_jobs():
    assert threads_per_job(2, n_cpus=16) == 8
    assert threads_per_job(3, n_cpus=16) == 5
    assert threads_per_job(32, n_cpus=16) == 1


def test_each_parallel_job_claims_its_own_device(tmp_path):
    first, second = claim_device(tmp_path, 2), claim_device(tmp_path, 2)
    assert first is not None and second is not None
    assert {first[0], second[0]} == {0, 1}
    assert claim_device(tmp_path, 2) is None  # both taken
    first[1].release()
    again = claim_device(tmp_path, 2)
    assert again is not None and again[0] == first[0]


def test_slurm_launcher_runs_one_task_per_gpu_and_requeues():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=slurm",
                "trainer=ddp",
                "hydra.launcher.gpus_per_node=4",
                "trainer.num_nodes=2",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert launcher.max_num_timeout > 0 and launcher.signal_delay_s > 0
    assert cfg.trainer.strategy._target_.endswith("DDPStrategy")


def test_fsdp_config_shards_each_block_and_keeps_full_checkpoints():
    from hydra.utils import instantiate
    from lightning.pytorch.strategies import FSDPStrategy

    from parrot_lm.model.gpt import Block

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["trainer=fsdp"])
    strategy = instantiate(OmegaConf.to_container(cfg.trainer.strategy))
    assert isinstance(strategy, FSDPStrategy)
    assert strategy._state_dict_type == "full"
    assert Block in strategy.kwargs["auto_wrap_policy"]._module_classes
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.devices == -1
