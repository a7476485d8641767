"""The TensorBoard HParams session and final metrics of a tiny fit (in this process), across a
resume, and the report reading the same run."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2

from parrot_lm.report.build import build_report
from parrot_lm.training.callbacks.hparams import BEST_VAL_LOSS, has_hparams_session
from tests.helpers import TINY_DATA, TINY_MODEL, compose_train
from tests.helpers.records import wait_for_the_next_second


def hparams_records(tb_dir: Path) -> list[plugin_data_pb2.HParamsPluginData]:
    """Every HParams session-start record in every events file of the dir."""
    from tensorboard.compat.proto.event_pb2 import Event

    found = []
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        for record in RawEventFileLoader(str(path)).Load():
            for value in Event.FromString(record).summary.value:
                if value.tag == "_hparams_/session_start_info":
                    content = value.metadata.plugin_data.content
                    found.append(plugin_data_pb2.HParamsPluginData.FromString(content))
    return found


def test_hparams_session_and_final_metrics_of_a_tiny_fit(tmp_path):
    from parrot_lm.training.run import run

    overrides = (
        TINY_MODEL
        + TINY_DATA
        + [
            "logger=tensorboard",
            "trainer.max_steps=4",
            "val_every_n_steps=2",
            "trainer.log_every_n_steps=2",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "callbacks.text_samples.max_new_tokens=2",
            "sample.max_new_tokens=0",
            "optim.warmup_steps=1",
        ]
    )
    val_loss = run(compose_train(tmp_path, overrides))
    tb = tmp_path / "run" / "tensorboard"
    events = EventAccumulator(str(tb), size_guidance={"scalars": 0}).Reload()

    content = events.PluginTagToContent("hparams")
    assert set(content) == {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    }
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metric_tags = {m.name.tag for m in experiment.experiment.metric_infos}
    assert metric_tags == {"val/loss", BEST_VAL_LOSS}  # the final val loss is val/loss's last
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    for key in (
        "model.d_model",
        "model.n_layers",
        "model.vocab_size",
        "optim.lr",
        "optim.weight_decay",
        "data.batch_size",
        "data.context_length",
        "data.name",
        "trainer.accumulate_grad_batches",
        "trainer.precision",
        "trainer.max_steps",
        "seed",
    ):
        assert key in hp, key
    assert hp["model.d_model"].number_value == 32 and hp["trainer.max_steps"].number_value == 4
    assert hp["data.name"].string_value == "stories" and hp["data.batch_size"].number_value == 8
    assert hp["model.tie_embeddings"].bool_value is True
    assert hp["optim.betas"].string_value == "[0.9, 0.95]"
    assert hp["trainer.precision"].string_value == "32-true"

    val = [e.value for e in events.Scalars("val/loss")]
    final, best = events.Scalars("val/loss")[-1], events.Scalars(BEST_VAL_LOSS)
    assert final.step == 4 and [b.step for b in best] == [0, 2, 4]  # at each validation
    assert math.isclose(final.value, val_loss, rel_tol=1e-6)
    bests = [min(val[: i + 1]) for i in range(len(val))]  # the lowest so far
    assert all(math.isclose(b.value, m, rel_tol=1e-6) for b, m in zip(best, bests, strict=True))
    assert not [t for t in events.Tags()["scalars"] if t.startswith("hp/")]
    assert len(hparams_records(tb)) == 1  # Lightning's own log_hyperparams adds no session

    # The best val loss so far travels in the checkpoint, for a resumed run.
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert math.isclose(ckpt["callbacks"]["HParamsSummary"]["best_val_loss"], min(val))

    # Resuming in the same run dir for 2 more steps (as `resume=<dir> trainer.max_steps=6`
    # would; compose has no command line, so the run's saved config is edited) writes no
    # second session, and the metrics go on to the new end.
    assert has_hparams_session(tb)
    run_config = tmp_path / "run" / "run_config.yaml"
    saved = OmegaConf.load(run_config)
    saved.trainer.max_steps = 6
    OmegaConf.save(saved, run_config)
    wait_for_the_next_second()  # the events are read back in file order
    val_loss = run(compose_train(tmp_path, [*overrides, f"resume={tmp_path / 'run'}"]))
    assert len(hparams_records(tb)) == 1
    events = EventAccumulator(str(tb), size_guidance={"scalars": 0}).Reload()
    val = [e.value for e in events.Scalars("val/loss")]
    # The validation at the checkpoint's step is not repeated; its best is logged again.
    assert [b.step for b in events.Scalars(BEST_VAL_LOSS)] == [0, 2, 4, 6]
    final, best = events.Scalars("val/loss")[-1], events.Scalars(BEST_VAL_LOSS)[-1]
    assert final.step == best.step == 6
    assert math.isclose(final.value, val_loss, rel_tol=1e-6)
    assert math.isclose(best.value, min(val), rel_tol=1e-6)

    # The report reads the run the same way.
    rep = build_report([str(tmp_path / "run")])
    assert rep.jobs[0].status == "done" and rep.jobs[0].steps == 6
    assert math.isclose(rep.jobs[0].final_val_loss, val[-1], rel_tol=1e-6)
