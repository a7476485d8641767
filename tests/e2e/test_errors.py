"""`python train.py` with bad input: one clear sentence on stderr, a non-zero exit, no traceback
(the real process: Hydra's own refusals exit 1, ParrotLM's exit 2)."""

import pytest

from tests.helpers import TINY_DATA, TINY_MODEL, assert_user_error, train_cli

FAST = ["logger=none", "callbacks=none", "trainer.enable_progress_bar=false", "trainer.max_steps=1"]


def train(tmp_path, *overrides):
    return train_cli(*FAST, *overrides, root_dir=tmp_path)


@pytest.mark.parametrize(
    ("override", "sentence"),
    [
        ("optim.lrr=1e-3", "optim.lrr is not a config key (did you mean optim.lr?)"),
        ("lr=1e-3", "lr is not a config key (did you mean optim.lr?)"),
        ("model=tinny", "model=tinny is not an option of model (did you mean tiny?); choose one"),
        ("modle=tiny", "modle is not a config key or group (did you mean model=tiny?)."),
        ("optim.lr=1e-3,3e-4", "sweeps over several values; add -m"),
    ],
)
def test_a_mistyped_key_or_option_names_the_closest(tmp_path, override, sentence):
    proc = train(tmp_path, override)
    assert_user_error(proc, sentence)
    assert proc.stderr.strip().count("\n") == 0  # the sentence alone
    assert not (tmp_path / "outputs").exists()


def test_a_mistyped_key_in_a_sweep_is_refused_before_any_job(tmp_path):
    proc = train_cli(*FAST, "optim.lr=1e-3,3e-4", "optim.betass=[0.9,0.95]", root_dir=tmp_path,
                     multirun=True)  # fmt: skip
    assert_user_error(proc, "optim.betass is not a config key (did you mean optim.betas?)")
    assert not (tmp_path / "outputs").exists()


def test_unknown_key_added_with_plus(tmp_path):
    proc = train(tmp_path, "+optim.lrr=1e-3")
    assert_user_error(proc, "error: optim.lrr is not a key of optim (did you mean optim.lr?); ")
    assert "ParrotLM reads only name, lr, betas," in proc.stderr


@pytest.mark.parametrize(
    "override, sentence",
    [
        ("trainer.max_steps=abc", "trainer.max_steps must be an integer, got 'abc'."),
        ("optim.lr=fast", "optim.lr must be a number, got 'fast'."),
        ("speed.compile=maybe", "speed.compile must be true or false, got 'maybe'."),
    ],
)
def test_wrong_typed_value(tmp_path, override, sentence):
    proc = train(tmp_path, override)
    assert_user_error(proc, f"error: {sentence}")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("sweep", "sentence"),
    [
        ("model=tiny,tinny", "Sweep job model=tinny: model=tinny is not an option of model"),
        ("optim=adamw,muonn", "Sweep job optim=muonn: optim=muonn is not an option of optim"),
        ("optim.lr=1e-3,abc", "Sweep job optim.lr=abc: optim.lr must be a number, got 'abc'."),
        ("optim.lr=1e-3,-1", "Sweep job optim.lr=-1: optim.lr must be a number > 0, got -1."),
    ],
)
def test_a_bad_value_anywhere_in_a_sweep_is_refused_before_any_job(tmp_path, sweep, sentence):
    # Only the first value of each list used to be checked: the later jobs were refused when
    # their turn came, after the earlier ones had trained (or with Hydra's raw error, exit 1).
    proc = train_cli(*FAST, sweep, root_dir=tmp_path, multirun=True)
    assert_user_error(proc, f"error: {sentence}")
    assert not (tmp_path / "outputs").exists()


def test_data_dir_without_meta(tmp_path):
    (tmp_path / "corpus").mkdir()
    proc = train(tmp_path, "data=prepared", f"data.data_dir={tmp_path / 'corpus'}")
    assert_user_error(proc, "has no meta.json")


def test_corpus_shorter_than_context(tmp_path):
    proc = train(
        tmp_path,
        *TINY_MODEL,
        *TINY_DATA,
        "data.source.num_documents=3",
        "model.context_length=1024",
    )
    assert_user_error(proc, "fewer than one window")


def test_model_vocab_smaller_than_data(tmp_path):
    proc = train(tmp_path, *TINY_MODEL, *TINY_DATA, "model.vocab_size=100")
    assert_user_error(proc, "but the data contains token id")


def test_bad_model_shape(tmp_path):
    proc = train(tmp_path, *TINY_MODEL, *TINY_DATA, "model.n_heads=3")
    assert_user_error(proc, "must divide model.d_model")
