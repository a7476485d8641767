"""`scripts/generate.py` on a run trained by train.py, as a user runs it: stdout is the text
alone, prompts from a file and from stdin, batches, and bad input as one sentence."""

import pytest
import torch

from parrot_lm.evaluation.cli import main as evaluate_main
from parrot_lm.generation.cli import main as generate_main
from parrot_lm.generation.params import SamplingParams
from parrot_lm.generation.text import complete_texts
from parrot_lm.runs.loading import load_model
from parrot_lm.serve.cli import main as chat_main
from tests.helpers import ROOT, assert_user_error, run_cli, run_main, tree_sha256


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, temperature=0)


def test_leaderboard_stdout_is_the_generated_text_alone(tiny_run):
    run_dir, _ = tiny_run
    loaded = load_model(run_dir)
    prompt = "Once upon a time"
    expected = complete_texts(loaded.model, loaded.tokenizer, [prompt], greedy(24))[0]
    proc = run_cli(
        ["scripts/generate.py", f"ckpt={run_dir}", f"prompt={prompt}", "temperature=0",
         "max_new_tokens=24", "leaderboard=true"],
        cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == expected + "\n"
    assert proc.stderr == ""


def test_prompts_from_stdin_file_and_batches(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Once upon a time\n\nThe dog\nA girl named Mia\n")
    args = ["scripts/generate.py", f"ckpt={run_dir}", "temperature=0", "max_new_tokens=8"]
    from_file = run_cli([*args, f"prompts_file={prompts}", "batch_size=2"], cwd=ROOT)
    assert from_file.returncode == 0, from_file.stderr[-2000:]
    blocks = from_file.stdout.split("\n---\n")
    assert [b.split(" ")[0] for b in blocks[:3]] == ["Once", "The", "A"]
    one_by_one = run_cli([*args, f"prompts_file={prompts}", "batch_size=1"], cwd=ROOT)
    assert one_by_one.stdout == from_file.stdout  # batching does not change greedy output
    stdin = run_cli([*args, "prompt=-", "leaderboard=true"], cwd=ROOT, input="The dog")
    assert stdin.returncode == 0 and blocks[1].startswith("The dog" + stdin.stdout.rstrip("\n"))


def test_generate_script_refuses_an_empty_prompt_in_one_sentence(tiny_run):
    """The real process: exit 2, the sentence on stderr, no traceback (every other bad input
    runs main() in-process: tests/integration/test_generate_trained.py)."""
    run_dir, _ = tiny_run
    proc = run_cli(["scripts/generate.py", f"ckpt={run_dir}", "prompt= "], cwd=ROOT)
    assert_user_error(proc, "prompt is empty")


@pytest.mark.parametrize("command", ["generate", "evaluate", "chat"])
def test_a_gpu_this_machine_lacks_is_one_sentence(tiny_run, command):
    """device=cuda where PyTorch sees no GPU (CI, this CPU build): refused before any work."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so device=cuda is valid here")
    main = {"generate": generate_main, "evaluate": evaluate_main, "chat": chat_main}[command]
    run = tiny_run[0]
    before = tree_sha256(run)
    args = ["device=cuda"] + ([] if command == "chat" else [f"ckpt={run}"])
    proc = run_main(main, args)
    assert_user_error(proc, "device=cuda, but")
    assert "use device=cpu" in proc.stderr
    assert tree_sha256(run) == before
