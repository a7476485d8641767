"""`python train.py -m`: the jobs of a sweep land in one dated dir, each with its overrides."""

from tests.helpers import TINY_DATA, TINY_MODEL, train_cli


def test_multirun_puts_jobs_in_one_dir(tmp_path):
    proc = train_cli(
        "optim.lr=1e-3,3e-4",
        "trainer.max_steps=4",
        "val_every_n_steps=2",
        "trainer.limit_val_batches=1",
        "sample.max_new_tokens=4",
        "logger=none",
        "trainer.enable_progress_bar=false",
        *TINY_MODEL,
        *TINY_DATA,
        root_dir=tmp_path,
        multirun=True,
        jobs=2,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweeps = list((tmp_path / "outputs" / "multiruns").glob("*/*"))
    assert len(sweeps) == 1
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert jobs == ["0", "1"]
    for job, lr in zip(jobs, ("0.001", "0.0003"), strict=True):
        assert (sweeps[0] / job / "checkpoints" / "last.ckpt").is_file()
        assert f"optim.lr={lr}" in (sweeps[0] / job / ".hydra" / "overrides.yaml").read_text()
