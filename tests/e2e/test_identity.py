"""A run's identity: what it was trained on (the data's content, the tokenizer's vocabulary) is
recorded in its checkpoints and checked by every later stage, its data dir is saved as an
absolute path, and a refused command leaves the run exactly as it was (runs/identity.py,
runs/run_dir.py RunDirSnapshot)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from parrot_lm.data.cli import main as prepare_main
from parrot_lm.evaluation.cli import main as evaluate_main
from parrot_lm.export.cli import main as export_main
from parrot_lm.generation.cli import main as generate_main
from tests.helpers import QUIET, TINY_MODEL, assert_user_error, output, run_main, train_cli
from tests.helpers.cli import tree_sha256

# Scheduling only (tests/conftest.py hands the longest files out first).
SCHEDULE_SECONDS = 60

WORDS = "the a fox dog ran sat cat blue red big small house tree".split()
# A char-level corpus from local files, given by relative paths as a user types them.
LOCAL = [
    *TINY_MODEL,
    *QUIET,
    "data=local",
    "data.source.path=corpus.jsonl",
    "data.data_dir=prepared",
    "data.tokenizer.kind=char",
    "data.batch_size=8",
    "logger=none",
    "trainer.limit_val_batches=1",
]


def write_corpus(path: Path, seed: int, words: list[str] = WORDS) -> None:
    """200 documents of `words` in a seeded order: another seed, the same characters."""
    rng = random.Random(seed)
    lines = (json.dumps({"text": " ".join(rng.choices(words, k=40))}) for _ in range(200))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """A 4-step run on a local corpus, started from its own folder with relative paths."""
    root = tmp_path_factory.mktemp("identity")
    write_corpus(root / "corpus.jsonl", seed=0)
    proc = train_cli(*LOCAL, "trainer.max_steps=4", run_dir=root / "run", cwd=root)
    assert proc.returncode == 0, output(proc)[-3000:]
    return root


def copy_of(root: Path, tmp_path: Path) -> Path:
    """The run and its data, copied to `tmp_path` (the run config's data dir stays absolute)."""
    shutil.copytree(root, tmp_path / "copy")
    return tmp_path / "copy"


def test_the_run_config_holds_absolute_paths_and_the_checkpoint_its_identity(local_run):
    saved = (local_run / "run" / "run_config.yaml").read_text()
    assert f"data_dir: {local_run / 'prepared'}\n" in saved
    ckpt = torch.load(local_run / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    identity = ckpt["hyper_parameters"]["identity"]
    assert set(identity) == {"data_config_hash", "data_sha256", "tokenizer_sha256"}
    meta = json.loads((local_run / "prepared" / "meta.json").read_text())
    assert identity["data_config_hash"] == meta["config_hash"]


def test_resume_and_evaluate_from_another_directory_use_the_runs_data(
    local_run, tmp_path, monkeypatch
):
    root = copy_of(local_run, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = train_cli("trainer.max_steps=5", resume=root / "run", cwd=elsewhere)
    assert proc.returncode == 0, output(proc)[-3000:]
    assert list(elsewhere.iterdir()) == []  # no second corpus prepared here
    ckpt = torch.load(root / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 5
    monkeypatch.chdir(elsewhere)
    proc = run_main(evaluate_main, [f"ckpt={root / 'run'}", "eval_set=val"])
    assert proc.returncode == 0, output(proc)
    assert json.loads(proc.stdout)["step"] == 5


@pytest.mark.parametrize(
    ("words", "fragment"),
    [
        (WORDS, "is not the corpus"),  # the same characters: the same vocabulary
        (["zebra", "quiz", "jump", "wolf"], "has model.vocab_size="),  # another vocabulary
    ],
    ids=["same-vocabulary", "other-vocabulary"],
)
def test_a_resume_on_rebuilt_data_is_refused_and_writes_nothing(
    local_run, tmp_path, monkeypatch, words, fragment
):
    root = copy_of(local_run, tmp_path)
    write_corpus(root / "corpus.jsonl", seed=1, words=words)
    monkeypatch.chdir(root)
    rebuilt = run_main(
        prepare_main, ["data=local", "data.source.path=corpus.jsonl", "data.data_dir=prepared",
                       "data.tokenizer.kind=char", "--force"]
    )  # fmt: skip
    assert rebuilt.returncode == 0, output(rebuilt)
    before = tree_sha256(root)
    # The copy's run config names the original's data dir; the rebuilt copy is asked for.
    proc = train_cli(*LOCAL, "trainer.max_steps=6", resume=root / "run", cwd=root)
    assert_user_error(proc, fragment)
    assert tree_sha256(root) == before  # the run's tokenizer/, .hydra/ and log included


def test_a_refused_resume_leaves_hydras_record_and_the_log_as_they_were(local_run, tmp_path):
    root = copy_of(local_run, tmp_path)
    before = tree_sha256(root)
    proc = train_cli(*LOCAL, "model.d_model=64", resume=root / "run", cwd=root)
    assert_user_error(proc, "Cannot change model.d_model when resuming")
    assert tree_sha256(root) == before  # .hydra/*.yaml and train.log included


def test_a_resume_keeps_the_record_of_the_command_that_started_the_run(local_run, tmp_path):
    root = copy_of(local_run, tmp_path)
    overrides = (root / "run" / ".hydra" / "overrides.yaml").read_text()
    proc = train_cli(*LOCAL, "trainer.max_steps=5", resume=root / "run", cwd=root)
    assert proc.returncode == 0, output(proc)[-3000:]
    assert (root / "run" / ".hydra" / "overrides.yaml").read_text() == overrides
    assert "trainer.max_steps=4" in overrides


def swap_two_characters(run: Path) -> None:
    """Replace the run's tokenizer by another vocabulary of the same size."""
    (chars_file,) = [p for p in (run / "tokenizer").iterdir() if p.name != "tokenizer_spec.json"]
    data = json.loads(chars_file.read_text())
    data["chars"][0], data["chars"][1] = data["chars"][1], data["chars"][0]
    chars_file.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("main", "args"),
    [
        (evaluate_main, ["eval_set=val"]),
        (generate_main, ["prompt=the", "max_new_tokens=2"]),
        (export_main, ["format=safetensors"]),
    ],
    ids=["evaluate", "generate", "export"],
)
def test_another_vocabulary_beside_the_checkpoint_is_refused(local_run, tmp_path, main, args):
    root = copy_of(local_run, tmp_path)
    swap_two_characters(root / "run")
    before = tree_sha256(root)
    proc = run_main(main, [f"ckpt={root / 'run'}", *args])
    assert_user_error(proc, "is not the one", code=None)
    assert f"{root / 'run' / 'tokenizer'}" in proc.stderr
    assert tree_sha256(root) == before


def test_evaluating_data_of_another_vocabulary_of_the_same_size_is_refused(local_run, tmp_path):
    root = copy_of(local_run, tmp_path)
    swap_two_characters(root / "run")
    tokenizer = root / "run" / "tokenizer"
    shutil.copytree(tokenizer, tmp_path / "swapped")
    shutil.rmtree(tokenizer)
    shutil.copytree(local_run / "run" / "tokenizer", tokenizer)  # the run's own, unchanged
    # The run's data dir, re-tokenized with the swapped vocabulary: same size, other ids.
    (chars,) = [p for p in (tmp_path / "swapped").iterdir() if p.name != "tokenizer_spec.json"]
    shutil.copyfile(chars, root / "prepared" / chars.name)
    before = tree_sha256(root)
    proc = run_main(
        evaluate_main,
        [f"ckpt={root / 'run'}", "eval_set=val", f"eval_set.data_dir={root / 'prepared'}"],
    )
    assert_user_error(proc, "was tokenized with another vocabulary", code=None)
    assert tree_sha256(root) == before
