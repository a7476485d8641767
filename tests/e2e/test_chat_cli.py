"""`scripts/chat.py` as a user runs it: bad config is one sentence, exit 2, no traceback."""

import socket

from parrot_lm.serve.cli import main as chat_main
from tests.helpers import ROOT, assert_user_error, run_cli, run_main


def test_chat_script_refuses_bad_config_with_a_sentence(tmp_path):
    bad = run_cli(["scripts/chat.py", "max_concurrent=0"], cwd=ROOT)
    assert_user_error(bad, "max_concurrent must be an integer >= 1")
    missing = run_cli(["scripts/chat.py", f"outputs_dir={tmp_path / 'none'}"], cwd=ROOT)
    assert_user_error(missing, "does not exist")
    assert_user_error(run_cli(["scripts/chat.py", "prot=1"], cwd=ROOT), "prot")


def test_a_port_in_use_or_a_foreign_host_is_one_sentence(tiny_run):
    """The server binds its socket itself, so uvicorn's error log never reaches the user."""
    outputs = f"outputs_dir={tiny_run[0].parent}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_main(chat_main, [outputs, f"port={port}"])
    assert_user_error(proc, f"Port {port} on 127.0.0.1 is already in use")
    proc = run_main(chat_main, [outputs, "host=999.999.1.1"])
    assert_user_error(proc, "host=999.999.1.1 is not a name or address here")
