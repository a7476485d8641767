"""The composed config trains in this process: the loss falls; it logs, checkpoints and samples."""

import math

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from parrot_lm.training.run import run
from tests.helpers import TINY_DATA, TINY_MODEL, compose_train


def test_tiny_fit_loss_falls_and_artifacts_exist(tmp_path):
    cfg = compose_train(
        tmp_path,
        TINY_MODEL
        + TINY_DATA
        + [
            "trainer.max_steps=60",
            "val_every_n_steps=30",
            "trainer.log_every_n_steps=5",
            "trainer.enable_progress_bar=false",
            "optim.warmup_steps=5",
            "callbacks.model_checkpoint.every_n_train_steps=30",
            "sample.max_new_tokens=8",
        ],
    )
    val_loss = run(cfg)
    meta_vocab = 300
    assert val_loss is not None and val_loss < 0.75 * math.log(meta_vocab)

    run_dir = tmp_path / "run"
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 60
    assert ckpt["hyper_parameters"]["model"]["d_model"] == 32
    assert ckpt["tokens_seen"] == 60 * 8 * 32
    assert "model.tok_emb.weight" in ckpt["state_dict"]
    assert (run_dir / "checkpoints" / "step0000030.ckpt").is_file()

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "train/tokens",
        "train/tokens_per_sec",
        "val/loss",
        "val/ppl",
    }
    assert expected <= scalars, expected - scalars
    val = [e.value for e in events.Scalars("val/loss")]
    assert len(val) == 3 and val[2] < val[1] < val[0]  # step 0, 30, 60
    assert abs(val[0] - math.log(meta_vocab)) < 0.3  # an untrained model is near ln(vocab)
    ppl = events.Scalars("val/ppl")[-1].value
    assert math.isclose(ppl, math.exp(val[-1]), rel_tol=1e-4)
    assert any(t.startswith("samples") for t in events.Tags()["tensors"])
