"""`scripts/report.py` as a user runs it: bad input is one sentence, exit 2, no traceback. The
report itself is tested in-process: tests/unit/test_report.py."""

from tests.helpers import ROOT, assert_user_error, run_cli


def test_cli_bad_input_exits_2_without_traceback(tmp_path):
    proc = run_cli(["scripts/report.py", str(tmp_path / "nope")], cwd=ROOT)
    assert_user_error(proc, "does not exist")
    assert proc.stdout == ""
