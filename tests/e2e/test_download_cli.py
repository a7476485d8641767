"""`scripts/download.py` as a user runs it: a corpus that is not on the hub is one sentence."""

from tests.helpers import ROOT, assert_user_error, run_cli


def test_cli_refuses_a_non_hub_corpus(tmp_path):
    proc = run_cli(["scripts/download.py", "data=stories"], cwd=ROOT)
    assert_user_error(proc, "is not a hub corpus")
