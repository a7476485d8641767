"""The battery's verdict (tools/battery): what counts as a well-handled bad input, judged on
synthetic process results (no subprocess here)."""

from __future__ import annotations

import subprocess

from tools.battery.harness import BAD, FAILED, GOOD, OK, tree_changes, verdict

SENTENCE = "error: data.batch_size must be an integer >= 1, got 0.\n"
TRACEBACK = (
    'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: bad\n'
)
TREE = {"runs": "dir", "runs/last.ckpt": "aa"}


def proc(returncode: int, stderr: str = "", stdout: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["python", "x.py"], returncode, stdout, stderr)


def test_a_clean_sentence_and_untouched_files_are_good():
    assert verdict(proc(2, "some log line\n" + SENTENCE), TREE, dict(TREE)) == (GOOD, "")
    argparse = "usage: r.py DIR\nr.py: error: the following arguments are required: DIR\n"
    assert verdict(proc(2, argparse))[0] == GOOD


def test_a_traceback_is_bad_even_with_a_sentence():
    result, reason = verdict(proc(1, TRACEBACK + SENTENCE))
    assert result == BAD and "traceback" in reason


def test_exit_zero_is_bad():
    result, reason = verdict(proc(0, "", "all fine\n"))
    assert result == BAD and "exit 0" in reason


def test_a_changed_added_or_removed_file_is_bad():
    after = {"runs": "dir", "runs/last.ckpt": "bb", "runs/new.json": "cc"}
    result, reason = verdict(proc(2, SENTENCE), TREE, after)
    assert result == BAD and "files changed" in reason
    assert "~runs/last.ckpt" in reason and "+runs/new.json" in reason
    assert tree_changes(TREE, {"runs": "dir"}) == ["-runs/last.ckpt"]


def test_no_message_several_lines_or_a_bare_word_are_bad():
    assert "no error message" in verdict(proc(2, ""))[1]
    assert "no 'error:' sentence" in verdict(proc(1, "ValueError: bad\n"))[1]
    assert "multi-line" in verdict(proc(1, SENTENCE + "Set HYDRA_FULL_ERROR=1 for more.\n"))[1]
    assert "not a sentence" in verdict(proc(2, "error: 'lr'\n"))[1]
    paragraph = "error: Cannot load x (It failed. This is bad. Try again. Or not.).\n"
    assert "not one sentence" in verdict(proc(2, paragraph))[1]


def test_a_control_must_succeed_without_a_traceback():
    assert verdict(proc(0, "done\n"), control=True) == (OK, "")
    assert verdict(proc(0, TRACEBACK), control=True)[0] == FAILED
    assert verdict(proc(2, SENTENCE), control=True)[0] == FAILED
