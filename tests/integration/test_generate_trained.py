"""Generation from a run trained by train.py, in this process: stop strings, and the generate
command's bad input through its main(argv) (one sentence on stderr, exit 2, no traceback; the
real process: tests/e2e/test_generate_cli.py)."""

import shutil

from parrot_lm.generation.cli import main
from parrot_lm.generation.params import SamplingParams
from parrot_lm.generation.text import complete_texts
from parrot_lm.runs.loading import load_model
from tests.helpers import assert_user_error, run_main


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, temperature=0)


def test_complete_texts_cut_at_the_first_stop_string(tiny_run):
    run_dir, _ = tiny_run
    loaded = load_model(run_dir)
    whole = complete_texts(loaded.model, loaded.tokenizer, ["Once"], greedy(24))[0]
    assert len(whole) > 6, whole
    stop = whole[3:6]
    cut = complete_texts(
        loaded.model, loaded.tokenizer, ["Once"], SamplingParams(24, temperature=0, stop=stop)
    )[0]
    assert cut == whole[: whole.index(stop)]


def test_generate_bad_input(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert_user_error(run_main(main, [f"ckpt={run_dir}", "prompt= "]), "prompt is empty")
    missing = run_main(main, [f"ckpt={tmp_path / 'nope.ckpt'}"])
    assert_user_error(missing, "does not exist")
    alone = tmp_path / "alone" / "model.ckpt"
    alone.parent.mkdir()
    shutil.copy(ckpt, alone)
    assert_user_error(run_main(main, [f"ckpt={alone}"]), "No tokenizer next to")
    assert_user_error(run_main(main, [f"ckpt={run_dir}", "temprature=0"]), "temprature")
    assert_user_error(run_main(main, []), "Set ckpt=")
    bad_top_k = run_main(main, [f"ckpt={run_dir}", "top_k=-3"])
    assert_user_error(bad_top_k, "top_k must be >= 0 (0 turns it off); got -3.")
