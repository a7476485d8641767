"""Every config value is range-checked by the schema before anything is written: one sentence
naming the key, the value and the allowed range; a refused command leaves nothing behind."""

from __future__ import annotations

import pytest
import torch

from parrot_lm.config.schema import validate_config, validate_evaluate_config
from parrot_lm.core.cli import CONF_DIR, compose_config
from parrot_lm.core.errors import ConfigError
from parrot_lm.training.run import check_sampling, group_entries, instantiate_group
from tests.helpers import (
    ROOT,
    SMALL_CORPUS,
    TINY_DATA,
    TINY_MODEL,
    assert_user_error,
    compose_train,
    run_cli,
    tree_sha256,
)

SCHEDULE_SECONDS = 60  # scheduling only: 83 tests, most of them in-process and quick

# (overrides, the whole sentence). Each bound is declared once, next to its field in
# parrot_lm/config/schema.py (or by the stage that owns it: the tokenizer's in data/prepare.py,
# the model's in GPTConfig, sampling's in SamplingParams).
BAD_TRAIN_VALUES = [
    # the cases of issue 16
    (["data.batch_size=0"], "data.batch_size must be an integer >= 1, got 0."),
    (["optim.lr=-1"], "optim.lr must be a number > 0, got -1."),
    (["val_every_n_steps=0"], "val_every_n_steps must be an integer >= 1, got 0."),
    (
        ["trainer.accumulate_grad_batches=0"],
        "trainer.accumulate_grad_batches must be an integer >= 1, got 0.",
    ),
    (["data.num_workers=-1"], "data.num_workers must be an integer >= 0, got -1."),
    (
        ["optim.betas=[2.0,3.0]"],
        "optim.betas must be a list of two numbers in [0, 1), got [2.0, 3.0].",
    ),
    (["seed=-3"], "seed must be an integer in [0, 4294967295], got -3."),
    (
        ["data.tokenizer.vocab_size=100"],
        "data.tokenizer.vocab_size must be an integer >= 257 (a byte-level BPE holds the 256 "
        "single bytes and end-of-text), got 100.",
    ),
    (["data.val_fraction=-0.5"], "data.val_fraction must be a number in [0, 1), got -0.5."),
    (["data.val_fraction=1"], "data.val_fraction must be a number in [0, 1), got 1."),
    (["optim.warmup_steps=-10"], "optim.warmup_steps must be an integer >= 0, got -10."),
    # the same kind, beyond the listed cases
    (["optim.betas=[0.9]"], "optim.betas must be a list of two numbers in [0, 1), got [0.9]."),
    (["optim.lr=nan"], "optim.lr must be a number > 0, got nan."),
    (["optim.lr=inf"], "optim.lr must be a number > 0, got inf."),
    (["optim.eps=0"], "optim.eps must be a number > 0, got 0."),
    (["optim.weight_decay=-0.1"], "optim.weight_decay must be a number >= 0, got -0.1."),
    (["optim.min_lr_ratio=1.5"], "optim.min_lr_ratio must be a number in [0, 1], got 1.5."),
    (["optim.grad_clip=0"], "optim.grad_clip must be a number > 0, got 0."),
    (["+optim.schedule_steps=0"], "optim.schedule_steps must be an integer >= 1, got 0."),
    (["optim.name=sgd"], "optim.name must be one of adamw, muon, got 'sgd'."),
    (["optim=muon", "optim.muon_lr=0"], "optim.muon_lr must be a number > 0, got 0."),
    (
        ["optim=muon", "optim.muon_momentum=1"],
        "optim.muon_momentum must be a number in [0, 1), got 1.",
    ),
    (
        ["optim=muon", "optim.muon_ns_steps=0"],
        "optim.muon_ns_steps must be an integer >= 1, got 0.",
    ),
    (
        ["optim=muon", "optim.muon_weight_decay=-1"],
        "optim.muon_weight_decay must be a number >= 0, got -1.",
    ),
    (["ckpt_every_n_steps=0"], "ckpt_every_n_steps must be an integer >= 1, got 0."),
    (["nonfinite_loss=maybe"], "nonfinite_loss must be one of stop, skip, got 'maybe'."),
    (["+data.val_stride=0"], "data.val_stride must be an integer >= 1, got 0."),
    (
        ["+data.val_stride=33"],
        "data.val_stride must be an integer in [1, data.context_length = 32], got 33.",
    ),
    (["data.seed=-1"], "data.seed must be an integer in [0, 4294967295], got -1."),
    (
        ["data.tokenizer.kind=wordpiece"],
        "Unknown tokenizer kind 'wordpiece' (data.tokenizer.kind); expected one of bpe, char, "
        "gpt2, byte.",
    ),
    (
        ["data.tokenizer=null"],
        "data.tokenizer must be set when data.source is set (e.g. data.tokenizer.kind=bpe).",
    ),
    (
        ["+data.tokenizer.train_max_bytes=0"],
        "data.tokenizer.train_max_bytes must be an integer >= 1, got 0.",
    ),
    (
        ["data=c4", "data.tokenizer.max_chars=0"],
        "data.tokenizer.max_chars must be an integer >= 1, got 0.",
    ),
    (
        ["data.source.num_documents=-5"],
        "data.source.num_documents must be an integer >= 2, got -5.",
    ),
    (["+data.source.limit=0"], "data.source.limit must be an integer >= 1, got 0."),
    (["model.context_length=0"], "model.context_length must be a positive integer, got 0."),
    (["model.n_heads=0"], "model.n_heads must be a positive integer, got 0."),
    (["model.dropout=1.0"], "model.dropout must be in [0, 1), got 1.0."),
    (["model.vocab_size=0"], "model.vocab_size must be a positive integer, got 0."),
    (
        ["trainer.max_steps=0"],
        "trainer.max_steps must be an integer >= 1 (the learning-rate schedule is defined in "
        "steps), got 0.",
    ),
    (["trainer.num_nodes=0"], "trainer.num_nodes must be an integer >= 1, got 0."),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps must be an integer >= 1, got 0."),
    (
        ["trainer.num_sanity_val_steps=-2"],
        "trainer.num_sanity_val_steps must be an integer >= -1, got -2.",
    ),
    (["trainer.max_epochs=-2"], "trainer.max_epochs must be an integer >= -1, got -2."),
    (
        ["trainer.limit_val_batches=1.5"],
        "trainer.limit_val_batches must be null (the whole val split), an integer >= 0 (batches) "
        "or a number in [0, 1] (a fraction), got 1.5.",
    ),
    (
        ["trainer.gradient_clip_val=-1"],
        "trainer.gradient_clip_val must be a number >= 0, got -1.",
    ),
    (
        ["speed.sdpa_backend=fast"],
        "speed.sdpa_backend must be one of auto, flash, efficient, cudnn, math, got 'fast'.",
    ),
    (
        ["speed.matmul_precision=low"],
        "speed.matmul_precision must be one of highest, high, medium, got 'low'.",
    ),
    (
        ["speed.compile_mode=fast"],
        "speed.compile_mode must be one of default, reduce-overhead, max-autotune, "
        "max-autotune-no-cudagraphs, got 'fast'.",
    ),
    (["sample.max_new_tokens=-1"], "sample.max_new_tokens must be an integer >= 0, got -1."),
    # a group entry must be a node to build, or null to switch it off
    (
        ["+callbacks.extra=3"],
        "callbacks.extra must be a node with a _target_ (or null to switch it off), got 3.",
    ),
    (
        ["+logger.extra.save_dir=x"],
        "logger.extra must be a node with a _target_ (or null to switch it off), got "
        "{'save_dir': 'x'}.",
    ),
    # sampling values, checked by SamplingParams (as generate and the server do) at start
    (["sample.temperature=-1"], "sample.temperature must be >= 0 (0 is greedy); got -1.0."),
    (["sample.top_k=-3"], "sample.top_k must be >= 0 (0 turns it off); got -3."),
    (
        ["callbacks.text_samples.temperature=-1"],
        "callbacks.text_samples.temperature must be >= 0 (0 is greedy); got -1.",
    ),
    (
        ["+callbacks.text_samples.top_p=1.5"],
        "callbacks.text_samples.top_p must be in (0, 1]; got 1.5.",
    ),
    (
        ["callbacks.text_samples.max_new_tokens=0"],
        "callbacks.text_samples.max_new_tokens must be an integer >= 1; got 0.",
    ),
]


def check_train_config(tmp_path, overrides):
    """What train.py checks before it writes anything: the schema, then the sampling values."""
    data = [] if any(o.startswith("data=") for o in overrides) else TINY_DATA
    cfg = validate_config(compose_train(tmp_path, [*TINY_MODEL, *data, *overrides]))
    check_sampling(cfg)
    return cfg


@pytest.mark.parametrize(
    "overrides, sentence", BAD_TRAIN_VALUES, ids=[" ".join(o) for o, _ in BAD_TRAIN_VALUES]
)
def test_out_of_range_value_is_one_sentence(tmp_path, overrides, sentence):
    with pytest.raises(ConfigError) as e:
        check_train_config(tmp_path, overrides)
    assert str(e.value) == sentence


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.val_fraction=0"],  # the bounds themselves are allowed
        ["optim.betas=[0.0,0.999]", "optim.warmup_steps=0", "optim.min_lr_ratio=1"],
        ["optim.grad_clip=null", "seed=0", "+data.val_stride=32", "sample.max_new_tokens=0"],
        ["data.tokenizer.vocab_size=257", "trainer.limit_val_batches=0.5"],
        ["trainer.max_steps=0", "trainer.fast_dev_run=true"],  # fast_dev_run sets its own
        ["data=prepared", "data.data_dir=/nowhere"],  # no source: no tokenizer needed
    ],
)
def test_values_in_range_pass(tmp_path, overrides):
    check_train_config(tmp_path, overrides)


def test_a_null_callback_or_logger_is_switched_off(tmp_path):
    cfg = check_train_config(tmp_path, ["callbacks.text_samples=null", "logger.tensorboard=null"])
    names = [type(c).__name__ for c in instantiate_group(cfg.callbacks)]
    assert names == ["PeriodicCheckpoint", "BestCheckpoint", "HParamsSummary"]
    assert group_entries(cfg.logger) == []


@pytest.mark.parametrize(
    "override, sentence",
    [
        ("max_tokens=-5", "max_tokens must be an integer >= 1, got -5."),
        ("max_tokens=0", "max_tokens must be an integer >= 1, got 0."),
        ("stride=0", "stride must be an integer >= 1, got 0."),
        ("batch_size=0", "batch_size must be an integer >= 1, got 0."),
    ],
)
def test_evaluate_values_are_range_checked(override, sentence):
    cfg = compose_config(str(CONF_DIR), "evaluate", ["ckpt=somewhere", override])
    with pytest.raises(ConfigError) as e:
        validate_evaluate_config(cfg)
    assert str(e.value) == sentence


# ---- as a user meets them: one sentence, exit 2, nothing written --------------------------------

FAST = ["logger=none", "trainer.enable_progress_bar=false", "trainer.max_steps=1"]


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["data.batch_size=0"], "error: data.batch_size must be an integer >= 1, got 0."),
        (["optim.betas=[2.0,3.0]"], "error: optim.betas must be a list of two numbers in [0, 1)"),
        (["data.tokenizer.vocab_size=100"], "error: data.tokenizer.vocab_size must be an integer"),
    ],
    ids=["batch_size", "betas", "bpe_vocab"],
)
def test_refused_train_writes_nothing(tmp_path, overrides, fragment):
    """Hydra makes the run dir before the task runs; a refused start removes it again, so the
    outputs dir (and everything else under the root) is exactly as it was."""
    (tmp_path / "outputs" / "runs").mkdir(parents=True)
    (tmp_path / "outputs" / "runs" / "keep.txt").write_text("an earlier file")
    before = tree_sha256(tmp_path)
    proc = run_cli(["train.py", f"paths.root_dir={tmp_path}", *FAST, *overrides], cwd=ROOT)
    assert_user_error(proc, fragment)
    assert tree_sha256(tmp_path) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="refuses trainer=gpu only without CUDA")
def test_trainer_gpu_without_cuda_is_one_sentence_and_writes_nothing(tmp_path):
    """Lightning's own refusal ("No supported gpu backend found!") named no setting; the
    accelerator is checked before the run config is written, so the outputs dir stays as it
    was."""
    (tmp_path / "outputs" / "runs").mkdir(parents=True)
    (tmp_path / "outputs" / "runs" / "keep.txt").write_text("an earlier file")
    before = tree_sha256(tmp_path)
    proc = run_cli(
        ["train.py", f"paths.root_dir={tmp_path}", "trainer=gpu", "trainer.max_steps=20"], cwd=ROOT
    )
    assert_user_error(
        proc,
        "error: trainer=gpu (trainer.accelerator=gpu) needs a CUDA GPU, and none is visible here "
        "(torch.cuda.is_available() is False); drop trainer=gpu to train on the CPU.\n",
    )
    assert proc.stderr.strip().count("\n") == 0  # the sentence alone
    assert tree_sha256(tmp_path) == before


def test_refusal_after_the_run_config_is_written_leaves_no_run_dir(tmp_path, small_data_dir):
    """A refusal that comes later (the model's vocab is smaller than the data's) also takes
    away the new run dir (its run config and tokenizer copy); the prepared data stays."""
    (tmp_path / "data").symlink_to(small_data_dir)
    data_before = tree_sha256(small_data_dir)
    proc = run_cli(
        [
            "train.py",
            f"paths.root_dir={tmp_path}",
            *FAST,
            *TINY_MODEL,
            *SMALL_CORPUS,
            "model.vocab_size=100",
        ],
        cwd=ROOT,
    )
    assert_user_error(proc, "but the data contains token id")
    assert not (tmp_path / "outputs").exists()
    after = tree_sha256(small_data_dir)  # every data file as it was (FileLock may add its lock)
    assert {path: after.get(path) for path in data_before} == data_before


def test_evaluate_refuses_negative_max_tokens(tmp_path):
    proc = run_cli(
        [str(ROOT / "scripts" / "evaluate.py"), f"ckpt={tmp_path / 'run'}", "max_tokens=-5"],
        cwd=tmp_path,
    )
    assert_user_error(proc, "error: max_tokens must be an integer >= 1, got -5.")
    assert list(tmp_path.iterdir()) == []


def test_prepare_refuses_a_too_small_bpe_before_reading_data(tmp_path):
    proc = run_cli(
        [
            str(ROOT / "scripts" / "prepare.py"),
            f"paths.data_dir={tmp_path / 'data'}",
            "data.tokenizer.vocab_size=100",
        ],
        cwd=tmp_path,
    )
    assert_user_error(proc, "error: data.tokenizer.vocab_size must be an integer >= 257")
    assert list(tmp_path.iterdir()) == []


def test_a_null_callback_trains(tmp_path, small_data_dir):
    """`callbacks.text_samples=null` (a traceback before) switches the samples off."""
    (tmp_path / "data").symlink_to(small_data_dir)
    run = tmp_path / "run"
    proc = run_cli(
        [
            "train.py",
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={run}",
            *FAST,
            *TINY_MODEL,
            *SMALL_CORPUS,
            "trainer.max_steps=2",
            "val_every_n_steps=2",
            "trainer.limit_val_batches=1",
            "sample.max_new_tokens=0",
            "callbacks.text_samples=null",
        ],
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "checkpoints" / "last.ckpt").is_file()
