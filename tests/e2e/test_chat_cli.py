"""`scripts/chat.py` as a user runs it: bad config is one sentence, exit 2, no traceback."""

from tests.helpers import ROOT, assert_user_error, run_cli


def test_chat_script_refuses_bad_config_with_a_sentence(tmp_path):
    bad = run_cli(["scripts/chat.py", "max_concurrent=0"], cwd=ROOT)
    assert_user_error(bad, "max_concurrent must be an integer >= 1")
    missing = run_cli(["scripts/chat.py", f"outputs_dir={tmp_path / 'none'}"], cwd=ROOT)
    assert_user_error(missing, "does not exist")
    assert_user_error(run_cli(["scripts/chat.py", "prot=1"], cwd=ROOT), "prot")
