"""Sweep report (report.md/.csv, val_loss.png) from TensorBoard events, and the HParams values
(the session of a real fit: tests/integration/test_hparams.py)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.tensorboard import SummaryWriter

from parrot_lm.report.build import REPORT_MARKER, build_report, write_report
from parrot_lm.report.cli import main as report_main
from parrot_lm.report.events import load_job
from parrot_lm.report.jobs import Job
from parrot_lm.report.tables import csv_row, format_duration
from parrot_lm.training.callbacks.hparams import HParamsSummary, flatten, hparam_value
from tests.helpers import ROOT, assert_user_error, run_main, tree_sha256
from tests.helpers.storage import read_only_place

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMMON = ["trainer.max_steps=20", "val_every_n_steps=10", "paths.root_dir=/somewhere"]


def write_events(
    tb_dir: Path,
    scalars: dict[str, list[tuple[int, float]]],
    t0: float,
    name: str,
    seconds_per_step: float = 1.0,
) -> None:
    """One events file named `name` (real names start with the time, so they sort by it);
    each point's wall time is t0 + step * seconds_per_step."""
    tmp = tb_dir / f".tmp-{name}"
    writer = SummaryWriter(log_dir=str(tmp))
    for tag, points in scalars.items():
        for step, value in points:
            writer.add_scalar(tag, value, step, walltime=t0 + step * seconds_per_step)
    writer.close()
    (events,) = tmp.glob("events.out.tfevents.*")
    tb_dir.mkdir(parents=True, exist_ok=True)
    os.replace(events, tb_dir / f"events.out.tfevents.{name}")
    tmp.rmdir()


def make_job(
    job_dir: Path,
    overrides: list[str],
    scalars: dict[str, list[tuple[int, float]]] | None,
    max_steps: int = 20,
    ckpt_step: int | None = None,
    lr: float = 1e-3,
    seconds_per_step: float = 1.0,
) -> Path:
    """A Hydra job dir as train.py leaves it: .hydra/overrides.yaml, run_config.yaml, events,
    and (when ckpt_step is given) checkpoints/last.ckpt."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    run_config = {"trainer": {"max_steps": max_steps}, "optim": {"lr": lr}, "seed": 1}
    (job_dir / "run_config.yaml").write_text(yaml.safe_dump(run_config))
    if scalars is not None:
        name = "0000001000.host.1.0"
        write_events(job_dir / "tensorboard", scalars, 1000.0, name, seconds_per_step)
    if ckpt_step is not None:
        (job_dir / "checkpoints").mkdir()
        torch.save({"global_step": ckpt_step}, job_dir / "checkpoints" / "last.ckpt")
    return job_dir


def fake_sweep(root: Path) -> Path:
    """Four jobs: 0 ends worse than its best, 1 is the best, 2 has no val/loss yet (incomplete),
    3 has no events at all (failed)."""
    sweep = root / "2026-01-02" / "03-04-05"
    make_job(
        sweep / "0",
        ["optim.lr=1e-3", *COMMON],
        {
            "val/loss": [(0, 5.0), (10, 3.0), (20, 3.5)],
            "train/tokens": [(9, 1000.0), (19, 2000.0)],
            "train/tokens_per_sec": [(9, 100.0), (19, 300.0)],
            "train/loss": [(9, 4.0), (20, 3.0)],
        },
        ckpt_step=20,
        seconds_per_step=9.6,  # wall time 0 .. 192 s
    )
    make_job(
        sweep / "1",
        ["optim.lr=3e-4", *COMMON],
        {"val/loss": [(0, 5.0), (10, 4.0), (20, 2.5)], "train/tokens": [(19, 2000.0)]},
        ckpt_step=20,
        lr=3e-4,
    )
    make_job(
        sweep / "2",
        ["optim.lr=1e-2", *COMMON],
        {"train/tokens": [(9, 1000.0)], "train/loss": [(9, 9.0)]},
        ckpt_step=10,
        lr=1e-2,
    )
    make_job(sweep / "3", ["optim.lr=3e-2", *COMMON], None, lr=3e-2)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_report_rows_sorted_by_best_val_loss(tmp_path, capsys):
    sweep = fake_sweep(tmp_path)
    assert report_main([str(sweep)]) == 0

    rows = read_csv(sweep / "report.csv")
    assert [r["job"] for r in rows] == ["1", "0", "2", "3"]  # no val loss: last
    by_job = {r["job"]: r for r in rows}
    best, worse, incomplete, failed = by_job["1"], by_job["0"], by_job["2"], by_job["3"]
    # Only the key that differs between the jobs is shown.
    assert best["overrides"] == "optim.lr=3e-4" and worse["overrides"] == "optim.lr=1e-3"
    assert float(worse["best_val_loss"]) == 3.0 and worse["best_step"] == "10"
    assert float(worse["final_val_loss"]) == 3.5
    assert math.isclose(float(worse["final_val_ppl"]), math.exp(3.5), rel_tol=1e-5)
    assert float(best["best_val_loss"]) == 2.5 and best["best_step"] == "20"
    assert worse["steps"] == "20" and best["steps"] == "20" and incomplete["steps"] == "10"
    assert worse["tokens"] == "2000" and float(worse["tokens_per_sec"]) == 200.0
    assert float(worse["wall_time_s"]) == 192.0
    assert [r["status"] for r in rows] == ["done", "done", "incomplete", "failed"]
    for row in (incomplete, failed):
        assert row["final_val_loss"] == row["best_val_loss"] == row["final_val_ppl"] == ""
    assert incomplete["tokens"] == "1000" and failed["tokens"] == ""

    md = (sweep / "report.md").read_text()
    lines = md.strip().splitlines()
    assert lines[0].startswith("| job | status | overrides | final val loss")
    assert len(lines) == 2 + 4
    assert lines[2].startswith("| 1 | done | optim.lr=3e-4 | 2.5000 | 12.18 | 2.5000 | 20 |")
    assert "| 3m12s |" in lines[3] and "| 2,000 |" in lines[3]
    assert lines[5].startswith("| 3 | failed | optim.lr=3e-2 |  |  |  |")
    out = capsys.readouterr()
    assert out.out == md  # the table on stdout, the paths written on stderr
    assert str(sweep / "report.md") in out.err and str(sweep / "val_loss.png") in out.err


def test_plot_is_a_png_with_one_line_per_job_with_val_loss(tmp_path):
    sweep = fake_sweep(tmp_path)
    rep = build_report([str(sweep)])
    ax = rep.figure.axes[0]
    assert len(ax.lines) == 2  # jobs 2 and 3 have no val/loss
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "optim.lr=3e-4",
        "optim.lr=1e-3",
    ]
    assert "03-04-05" in ax.get_title()
    assert list(ax.lines[0].get_xdata()) == [0, 10, 20]

    write_report(rep)
    png = (sweep / "val_loss.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 1000
    import matplotlib.image

    image = matplotlib.image.imread(sweep / "val_loss.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100

    by_tokens = build_report([str(sweep)], x="tokens", logy=True)
    ax = by_tokens.figure.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "training tokens"
    best_line = ax.lines[0]  # job 1: tokens 2000 at step 19, so 0 at 0 and 20/19 * 2000 at 20
    assert list(best_line.get_xdata())[0] == 0
    assert math.isclose(list(best_line.get_xdata())[-1], 2000 * 20 / 19)


def test_resumed_run_later_events_for_a_step_win(tmp_path):
    job = make_job(tmp_path / "run", ["optim.lr=1e-3"], None, max_steps=40, ckpt_step=40)
    tb = job / "tensorboard"
    write_events(
        tb, {"val/loss": [(0, 5.0), (10, 4.0), (20, 3.9), (30, 3.8)]}, 1000.0, "0000001000.h.1.0"
    )
    # Resumed from the step-20 checkpoint: purges the old 20 and 30 (as train.py's purge_step).
    tmp = tb / ".tmp"
    writer = SummaryWriter(log_dir=str(tmp), purge_step=20)
    for step, value in [(20, 3.0), (30, 2.0), (40, 2.5)]:
        writer.add_scalar("val/loss", value, step, walltime=2000.0 + step)
    writer.close()
    (events,) = tmp.glob("events.out.tfevents.*")
    os.replace(events, tb / "events.out.tfevents.0000002000.h.2.0")
    tmp.rmdir()
    # And a rewrite of the last step without any purge marker: the later one still wins.
    write_events(tb, {"val/loss": [(40, 1.5)]}, 3000.0, "0000003000.h.3.0")

    loaded = load_job(Job(path=job, name="run"))
    row = csv_row(loaded)
    assert loaded.val.steps == [0, 10, 20, 30, 40]
    assert loaded.val.values == [5.0, 4.0, 3.0, 2.0, 1.5]
    assert float(row["best_val_loss"]) == 1.5 and row["best_step"] == "40"
    assert float(row["final_val_loss"]) == 1.5 and row["status"] == "done"
    # A single run: all of its overrides, and the run dir's own name as the job.
    rep = build_report([str(job)])
    assert rep.jobs[0].name == "run" and rep.jobs[0].label == "optim.lr=1e-3"


def test_several_sweeps_by_glob(tmp_path):
    for time in ("10-00-00", "11-00-00"):
        sweep = tmp_path / "multiruns" / "2026-01-02" / time
        for num, lr in enumerate(("1e-3", "3e-4")):
            make_job(
                sweep / str(num),
                [f"optim.lr={lr}", *COMMON] + (["model=deep_narrow"] if time == "11-00-00" else []),
                {"val/loss": [(0, 5.0), (10, 4.0 - num - 2 * (time == "11-00-00"))]},
            )
    out = tmp_path / "cmp"
    assert report_main([str(tmp_path / "multiruns" / "*" / "*"), "--out", str(out)]) == 0
    rows = read_csv(out / "report.csv")
    assert [r["job"] for r in rows] == ["11-00-00/1", "11-00-00/0", "10-00-00/1", "10-00-00/0"]
    # model= is overridden in one sweep only: the other sweep's jobs show nothing for it
    # (their run config has no option name), the lr is shown for all.
    assert rows[0]["overrides"] == "optim.lr=3e-4 model=deep_narrow"
    assert rows[3]["overrides"] == "optim.lr=1e-3"
    assert (out / "val_loss.png").read_bytes().startswith(PNG_MAGIC)


def test_overrides_missing_from_a_job_come_from_its_run_config(tmp_path):
    """A resumed job's .hydra holds the resume command, not its sweep overrides."""
    sweep = tmp_path / "sweep"
    make_job(sweep / "0", ["optim.lr=0.001"], {"val/loss": [(0, 3.0)]}, lr=1e-3)
    make_job(
        sweep / "1", ["resume=/x/1", "trainer.max_steps=40"], {"val/loss": [(0, 2.0)]}, lr=3e-4
    )
    rep = build_report([str(sweep)])
    labels = {j.name: j.label for j in rep.jobs}
    assert labels == {
        "0": "optim.lr=0.001 trainer.max_steps=20",
        "1": "optim.lr=0.0003 trainer.max_steps=40",
    }


def test_format_duration():
    assert format_duration(192.4) == "3m12s"
    assert format_duration(7) == "7s"
    assert format_duration(3723) == "1h02m03s"
    assert format_duration(None) == ""


def load_script_main():
    import importlib.util

    spec = importlib.util.spec_from_file_location("report_script", ROOT / "scripts" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("case", ["missing", "empty", "glob", "out_is_file"])
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, case, capsys):
    script_main = load_script_main()
    empty = tmp_path / "empty"
    empty.mkdir()
    args = {
        "missing": [str(tmp_path / "nope")],
        "empty": [str(empty)],
        "glob": [str(tmp_path / "zz*")],
        "out_is_file": [str(fake_sweep(tmp_path / "s")), "--out", str(tmp_path / "file")],
    }[case]
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        script_main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    expected = {"missing": "does not exist", "empty": "holds no run dirs", "glob": "matches"}
    assert expected.get(case, "is a file") in err
    assert not list(tmp_path.rglob("report.*")) and not list(tmp_path.rglob("*.png"))
    assert list(empty.iterdir()) == []


# -- Where the report goes ----------------------------------------------------------------------
def one_run(path: Path) -> Path:
    """A single run dir (outputs/runs/<name>) with one val/loss point."""
    return make_job(path, ["optim.lr=1e-3"], {"val/loss": [(0, 5.0), (10, 4.0)]})


def test_a_report_of_one_dir_goes_into_it_and_regenerates(tmp_path):
    """A sweep's and a single run's report: into the dir itself, marked as its own; running the
    same command again replaces it (the same dirs), also where it predates the marker."""
    sweep, run = fake_sweep(tmp_path / "multiruns"), one_run(tmp_path / "runs" / "ref")
    for where in (sweep, run):
        assert run_main(report_main, [str(where)]).returncode == 0
        assert (where / "report.md").is_file() and (where / "val_loss.png").is_file()
        assert json.loads((where / REPORT_MARKER).read_text()) == {"inputs": ["."]}
    (sweep / "report.md").write_text("stale\n")
    (sweep / REPORT_MARKER).unlink()  # a report written before markers: still its own
    assert run_main(report_main, [str(sweep), "--out", str(sweep)]).returncode == 0
    assert (sweep / "report.md").read_text().startswith("| job | status |")


def test_a_report_of_several_dirs_needs_an_out_dir_of_its_own(tmp_path):
    """The trial's case: `report.py <sweep> <run>` replaced the sweep's own report with the
    combined one. Now it is refused (naming --out) and every input is left as it was."""
    sweep, run = fake_sweep(tmp_path / "multiruns"), one_run(tmp_path / "runs" / "ref")
    assert run_main(report_main, [str(sweep)]).returncode == 0
    before, sweep_before = tree_sha256(tmp_path), tree_sha256(sweep)
    proc = run_main(report_main, [str(sweep), str(run)])
    assert_user_error(proc, "A report of 2 dirs needs --out DIR, a directory of its own")
    assert proc.stdout == "" and tree_sha256(tmp_path) == before
    for out in (sweep, run, sweep / "0", tmp_path / "multiruns"):  # each holds runs
        proc = run_main(report_main, [str(sweep), str(run), "--out", str(out)])
        assert_user_error(proc, f"--out {out} holds runs of its own")
    proc = run_main(report_main, [str(run), "--out", str(sweep)])  # into the sweep's own place
    assert_user_error(proc, f"--out {sweep} holds runs of its own")
    assert tree_sha256(tmp_path) == before

    cmp = tmp_path / "reports" / "cmp"
    assert run_main(report_main, [str(sweep), str(run), "--out", str(cmp)]).returncode == 0
    assert "ref" in [row["job"] for row in read_csv(cmp / "report.csv")]
    assert tree_sha256(sweep) == sweep_before  # the sweep's own report is untouched
    # The same dirs again (given in another order): the report is regenerated.
    assert run_main(report_main, [str(run), str(sweep), "--out", str(cmp)]).returncode == 0


def test_a_report_never_replaces_the_report_of_other_dirs(tmp_path):
    """--out holding the report of another set of dirs (its marker says which), or report
    files with no marker, is refused before anything is read; a moved outputs/ tree keeps its
    reports replaceable (the marker is relative)."""
    root = tmp_path / "outputs"
    sweep, run = fake_sweep(root / "multiruns"), one_run(root / "runs" / "ref")
    other = one_run(root / "runs" / "other")
    cmp = root / "reports" / "cmp"
    assert run_main(report_main, [str(sweep), str(run), "--out", str(cmp)]).returncode == 0
    before = tree_sha256(tmp_path)
    for argv in ([str(sweep), str(other)], [str(run)], [str(sweep), str(run), str(other)]):
        proc = run_main(report_main, [*argv, "--out", str(cmp)])
        expected = f"{cmp} already holds the report of other dirs ({sweep.resolve()}, "
        assert_user_error(proc, expected)
        assert "delete report.md, report.csv, report_groups.csv, val_loss.png" in proc.stderr
        assert tree_sha256(tmp_path) == before
    foreign = root / "reports" / "foreign"
    foreign.mkdir()
    (foreign / "val_loss.png").write_bytes(b"someone else's plot")
    proc = run_main(report_main, [str(run), "--out", str(foreign)])
    assert_user_error(proc, f"{foreign} already holds val_loss.png, not written by a report of")
    assert (foreign / "val_loss.png").read_bytes() == b"someone else's plot"

    moved = tmp_path / "moved"
    os.replace(root, moved)
    cmp = moved / "reports" / "cmp"
    argv = [str(moved / "runs" / "ref"), str(sweep).replace(str(root), str(moved))]
    assert run_main(report_main, [*argv, "--out", str(cmp)]).returncode == 0


@pytest.fixture
def read_only_sweep(tmp_path):
    """fake_sweep in a dir this process cannot write to (tests/helpers/storage.py)."""
    with read_only_place(tmp_path / "ro", fake_sweep, size="16m") as sweep:
        yield sweep


def test_a_sweep_that_cannot_be_written_is_refused_before_reading_naming_out(
    read_only_sweep, tmp_path, monkeypatch
):
    def read(path):
        raise AssertionError("events were read before the out dir was checked")

    monkeypatch.setattr("parrot_lm.report.build.load_job", read)
    proc = run_main(report_main, [str(read_only_sweep)])
    assert_user_error(proc, f"Cannot write {read_only_sweep} (")
    assert proc.stderr.rstrip().endswith("place with --out DIR.") and proc.stdout == ""
    monkeypatch.undo()
    out = tmp_path / "elsewhere"
    assert run_main(report_main, [str(read_only_sweep), "--out", str(out)]).returncode == 0
    assert (out / "report.md").is_file()


# -- HParams ------------------------------------------------------------------------------------
def test_hparam_values_are_plain_types():
    flat = flatten({"model": {"d": 32, "tie": True}, "optim": {"betas": [0.9, 0.95]}, "x": None})
    assert flat == {"model.d": 32, "model.tie": True, "optim.betas": [0.9, 0.95], "x": None}
    assert [hparam_value(v) for v in flat.values()] == [32, True, "[0.9, 0.95]", "null"]
    assert hparam_value(torch.tensor(2.5)) == 2.5


def test_hparams_callback_does_nothing_without_tensorboard(tmp_path):
    import lightning as L

    callback = HParamsSummary(extra={"seed": 1})
    trainer = L.Trainer(
        logger=False, callbacks=[callback], enable_progress_bar=False, default_root_dir=tmp_path
    )
    callback.write_session(trainer, None)  # no TensorBoardLogger: returns before using the module
    callback.on_validation_end(trainer, None)
    assert not callback.session_written and callback.best_val_loss is None


# -- seed groups --------------------------------------------------------------------------------
# Final val losses of three seeds at lr 1e-3 and three at lr 3e-4 (best = final here but for
# seed 1 of lr 1e-3, whose best is earlier). Exact in float32, as TensorBoard stores them.
SEED_FINALS = {"1e-3": [3.0, 3.25, 3.5], "3e-4": [2.5, 2.75, 3.25]}
EARLY_BEST = 2.875
BESTS_1E3 = [EARLY_BEST, 3.25, 3.5]
# By hand for lr 3e-4: mean 8.5/3; sd = sqrt(sum((x - mean)^2) / (n - 1)) = sqrt(0.875/6).
MEAN_3E4 = 8.5 / 3
SD_3E4 = math.sqrt(0.875 / 6)
T_975_2 = 4.302652729749464  # t_{0.975, 2}, as printed in t tables (4.303)


def seed_sweep(root: Path) -> Path:
    """Six jobs: lr 1e-3 and 3e-4, seeds 1, 2, 3 each (a real `-m optim.lr=... seed=1,2,3`)."""
    sweep = root / "seeds"
    num = 0
    for lr, finals in SEED_FINALS.items():
        for seed, final in zip((1, 2, 3), finals, strict=True):
            early = EARLY_BEST if (lr, seed) == ("1e-3", 1) else 5.0
            make_job(
                sweep / str(num),
                [f"optim.lr={lr}", f"seed={seed}", *COMMON],
                {"val/loss": [(0, 6.0), (10, early), (20, final)]},
                ckpt_step=20,
                lr=float(lr),
            )
            num += 1
    return sweep


def test_jobs_differing_only_in_seed_are_one_group_different_lr_two(tmp_path):
    from parrot_lm.report.stats import group_jobs

    rep = build_report([str(seed_sweep(tmp_path))])
    assert [(g.label, len(g.jobs)) for g in rep.groups] == [
        ("optim.lr=3e-4", 3),
        ("optim.lr=1e-3", 3),
    ]
    assert sorted(rep.groups[0].seeds) == ["1", "2", "3"]
    # One lr only: a single group, named (all), with every seed in it.
    one = [j for j in rep.jobs if j.label_parts["optim.lr"] == "1e-3"]
    from parrot_lm.report.labels import label_jobs

    label_jobs(one)
    (group,) = group_jobs(one)
    assert group.label == "(all)" and len(group.jobs) == 3


def test_group_mean_sd_ci_and_welch_p(tmp_path):
    import statistics

    from scipy import stats

    rep = build_report([str(seed_sweep(tmp_path))])
    ref, other = rep.groups
    a = SEED_FINALS["3e-4"]
    assert math.isclose(statistics.stdev(a), SD_3E4)  # the hand value is the ddof=1 sd
    half = T_975_2 * SD_3E4 / math.sqrt(3)
    final = ref.final
    assert final.n == 3 and math.isclose(final.mean, MEAN_3E4) and math.isclose(final.sd, SD_3E4)
    assert math.isclose(final.ci_low, MEAN_3E4 - half)
    assert math.isclose(final.ci_high, MEAN_3E4 + half)
    # Best val loss: seed 1 of lr 1e-3 is best at step 10, not at its end.
    assert sorted(other.bests) == BESTS_1E3
    assert math.isclose(other.best.mean, statistics.mean(BESTS_1E3))
    assert math.isclose(other.best.sd, statistics.stdev(BESTS_1E3))
    # The reference (first) group has no p; the other's equals scipy's Welch test exactly.
    assert ref.p_final is None and ref.p_best is None
    b = SEED_FINALS["1e-3"]
    assert other.p_final == stats.ttest_ind(a, b, equal_var=False).pvalue
    assert other.p_best == stats.ttest_ind(a, BESTS_1E3, equal_var=False).pvalue


def test_seed_tables_written_and_single_seed_groups_have_no_ci(tmp_path):
    sweep = seed_sweep(tmp_path)
    make_job(sweep / "6", ["optim.lr=1e-2", "seed=1", *COMMON], {"val/loss": [(0, 4.0)]}, lr=1e-2)
    assert report_main([str(sweep)]) == 0
    md = (sweep / "report.md").read_text()
    per_job, groups_md = md.split("\n## Seed groups\n\n")
    assert len(per_job.strip().splitlines()) == 2 + 7  # the per-job table is kept
    lines = groups_md.strip().splitlines()
    assert lines[0].startswith("| group | seeds | n | final val loss (mean ± sd) | final 95% CI")
    assert lines[2] == (
        "| optim.lr=3e-4 | 1,2,3 | 3 | 2.8333 ± 0.3819 | [1.8847, 3.7820] |  "
        "| 2.8333 ± 0.3819 | [1.8847, 3.7820] |  |"
    )
    assert lines[3].startswith("| optim.lr=1e-3 | 1,2,3 | 3 | 3.2500 ± 0.2500 | [2.6290, 3.8710] |")
    assert lines[4] == "| optim.lr=1e-2 | 1 | 1 | 4.0000 |  |  | 4.0000 |  |  |"
    rows = {r["group"]: r for r in read_csv(sweep / "report_groups.csv")}
    single = rows["optim.lr=1e-2"]
    assert single["final_val_loss_n"] == "1" and single["final_val_loss_sd"] == ""
    assert single["final_val_loss_ci95_low"] == "" and single["best_val_loss_p_welch"] == ""
    assert rows["optim.lr=1e-3"]["final_val_loss_p_welch"] != ""


def test_plot_draws_group_means_with_sd_bands(tmp_path):
    from matplotlib.collections import PolyCollection

    rep = build_report([str(seed_sweep(tmp_path))])
    ax = rep.figure.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "optim.lr=3e-4 (mean ± sd, n=3)",
        "optim.lr=1e-3 (mean ± sd, n=3)",
    ]
    assert list(ax.lines[0].get_ydata()) == pytest.approx([6.0, 5.0, MEAN_3E4])
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    # The band at the last step (20) spans mean ± sd of the lr 3e-4 finals.
    vertices = bands[0].get_paths()[0].vertices
    ys = vertices[vertices[:, 0] == 20][:, 1]
    assert min(ys) == pytest.approx(MEAN_3E4 - SD_3E4)
    assert max(ys) == pytest.approx(MEAN_3E4 + SD_3E4)
    write_report(rep)
    assert (tmp_path / "seeds" / "val_loss.png").read_bytes().startswith(PNG_MAGIC)
