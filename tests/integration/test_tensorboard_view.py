"""What TensorBoard shows of a tiny run, read back from its event files: no `epoch` scalar, no
`hp/*` copies of the val loss, the HParams session with the run's overridden (swept) keys and
its metric columns, and the text samples as wrapped Markdown code blocks."""

from __future__ import annotations

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from parrot_lm.training.callbacks.hparams import BEST_VAL_LOSS
from parrot_lm.training.callbacks.tensorboard import WRAP_COLUMNS, sample_markdown
from tests.helpers.config import QUIET, TINY_DATA, TINY_MODEL
from tests.helpers.training import fit


def test_event_files_hold_what_the_dashboards_should_show(tmp_path):
    fit(
        tmp_path,
        *TINY_MODEL,
        *TINY_DATA,
        *QUIET,
        "logger=tensorboard",
        "optim.lr=0.002",  # a value a sweep would set: the HParams session must carry it
        "model.d_model=48",
        "trainer.max_steps=4",
        "val_every_n_steps=2",
        "trainer.log_every_n_steps=1",
        "callbacks.text_samples.max_new_tokens=120",  # longer than one wrapped line
    )
    events = EventAccumulator(
        str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0}
    ).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/tokens_per_sec", "val/loss", BEST_VAL_LOSS} <= scalars
    assert "epoch" not in scalars  # Lightning adds it to every training log call
    assert not [tag for tag in scalars if tag.startswith("hp/")]

    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert {m.name.tag for m in experiment.experiment.metric_infos} == {"val/loss", BEST_VAL_LOSS}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["optim.lr"].number_value == 0.002 and hp["model.d_model"].number_value == 48

    (tag,) = [t for t in events.Tags()["tensors"] if t.startswith("samples")]
    texts = [e.tensor_proto.string_val[0].decode() for e in events.Tensors(tag)]
    assert len(texts) == 3  # after the validations at steps 0, 2 and 4
    lines = texts[-1].splitlines()
    assert len(lines) >= 2, texts[-1]  # the sample was wrapped
    # Every line inside the code block: indented, and no wider than the wrap.
    assert all(line.startswith("    ") and len(line) <= WRAP_COLUMNS + 4 for line in lines)


def test_sample_markdown_wraps_and_keeps_line_breaks_inside_the_block():
    text = sample_markdown(["a" * 25 + "\nsecond", "x"], width=10)
    assert text == ("    aaaaaaaaaa\n    aaaaaaaaaa\n    aaaaa\n    second\n\n    x")
