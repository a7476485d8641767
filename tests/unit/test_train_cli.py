"""train.py's checks before Hydra starts: every job of a sweep is checked, not its first."""

from __future__ import annotations

import pytest

from parrot_lm.core.errors import ConfigError
from parrot_lm.training import cli
from parrot_lm.training.cli import check_overrides, sweep_jobs


def test_sweep_jobs_is_the_cartesian_product_up_to_the_limit():
    lists = [["optim.lr=1", "optim.lr=2"], ["seed=1", "seed=2", "seed=3"], ["model=tiny"]]
    jobs = sweep_jobs(lists, limit=6)
    assert len(jobs) == 6
    assert ["optim.lr=2", "seed=3", "model=tiny"] in jobs
    assert len({tuple(job) for job in jobs}) == 6


def test_a_larger_sweep_checks_each_value_once():
    lists = [["a=1", "a=2", "a=3"], ["b=1", "b=2"], ["c=1", "c=2", "c=3", "c=4"]]
    jobs = sweep_jobs(lists, limit=23)  # 24 combinations
    # The first job, then each later value with the first value of every other list.
    assert jobs[0] == ["a=1", "b=1", "c=1"]
    assert len(jobs) == 1 + 2 + 1 + 3
    every_value = {o for values in lists for o in values}
    assert {o for job in jobs for o in job} == every_value


def lr_of(job: list[str]) -> str:
    return next(o for o in job if o.startswith("optim.lr="))


def checked_jobs(monkeypatch, args: list[str]) -> list[list[str]]:
    jobs: list[list[str]] = []
    monkeypatch.setattr(cli, "_check_job", lambda job, swept, cross: jobs.append(job))
    check_overrides(args)
    return jobs


def test_every_job_of_a_command_line_sweep_is_checked(monkeypatch):
    jobs = checked_jobs(monkeypatch, ["-m", "optim.lr=1e-3,3e-4", "seed=1,2", "logger=none"])
    assert len(jobs) == 4
    assert all("logger=none" in job for job in jobs)
    assert ["optim.lr=0.0003", "seed=2", "logger=none"] in jobs  # as Hydra writes the value


def test_a_sweep_kept_in_a_config_is_checked_and_the_command_line_wins(monkeypatch):
    # conf/experiment/tinystories_10k_lr_sweep.yaml sweeps optim.lr over four values.
    jobs = checked_jobs(monkeypatch, ["-m", "experiment=tinystories_10k_lr_sweep"])
    assert sorted(lr_of(job) for job in jobs) == sorted(
        f"optim.lr={v}" for v in ("0.01", "0.001", "0.0005", "0.0002")
    )
    jobs = checked_jobs(monkeypatch, ["-m", "experiment=tinystories_10k_lr_sweep", "optim.lr=7e-4"])
    assert [lr_of(job) for job in jobs] == ["optim.lr=7e-4"]


def test_a_single_run_is_composed_but_not_swept(monkeypatch):
    assert checked_jobs(monkeypatch, ["optim.lr=1e-3"]) == []
    with pytest.raises(ConfigError, match="sweeps over several values; add -m"):
        check_overrides(["optim.lr=1e-3,3e-4"])


@pytest.mark.parametrize(
    ("sweep", "sentence"),
    [
        ("seed=1,2", None),
        ("data.batch_size=4,0", "Sweep job data.batch_size=0: data.batch_size must be an integer"),
        ("sample.temperature=1.0,-1", "Sweep job sample.temperature=-1: sample.temperature must"),
        ("trainer.max_steps=2,abc", "trainer.max_steps must be an integer, got 'abc'."),
    ],
)
def test_the_job_checks_run_the_schema_and_the_sampling_settings(sweep, sentence):
    if sentence is None:
        check_overrides(["-m", sweep])
        return
    with pytest.raises(ConfigError) as refused:
        check_overrides(["-m", sweep])
    assert sentence in str(refused.value)


def test_a_sigterm_lightning_handles_itself_exits_143_not_0(monkeypatch):
    # Lightning's SIGTERMException (a SIGTERM during the first validation, before GracefulStop's
    # handlers are in) is a SystemExit without a code: the process exited with status 0.
    from lightning.pytorch.utilities.exceptions import SIGTERMException
    from omegaconf import OmegaConf

    from parrot_lm.training import run as run_module

    def killed(cfg, stack):
        raise SIGTERMException()

    monkeypatch.setattr(run_module, "_run", killed)
    cfg = OmegaConf.create({"paths": {"output_dir": "outputs/runs/x"}})
    with pytest.raises(SystemExit) as stopped:
        run_module.run(cfg)
    assert stopped.value.code == 143
