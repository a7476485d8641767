"""`parrot-report` (and scripts/report.py): the sweep report's command line."""

from __future__ import annotations

import argparse
import sys

from parrot_lm.core.cli import exit_on_user_error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/report.py",
        description="Table and val/loss plot of the runs of one or more sweeps (or single runs).",
    )
    parser.add_argument(
        "dirs", nargs="+", metavar="DIR", help="sweep dir, run dir, or a glob of them"
    )
    parser.add_argument(
        "--out",
        help="where to write report.md/.csv and val_loss.png (default: the DIR itself when "
        "there is one; needed for several, a directory of their own)",
    )
    parser.add_argument(
        "--x", choices=("step", "tokens"), default="step", help="x axis of the plot"
    )
    parser.add_argument("--logy", action="store_true", help="log-scale the loss axis")
    return parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    """Build and write the report of the DIRs in `argv` (None: sys.argv[1:]), print the table
    on stdout and the paths written on stderr; returns 0. Bad input is one sentence on stderr
    and exit code 2."""
    ns = _parser().parse_args(argv)
    from parrot_lm.report.build import build_report, write_report

    report = build_report(ns.dirs, ns.out, x=ns.x, logy=ns.logy)
    sys.stdout.write(report.markdown)  # first: a write that fails still shows the table
    sys.stdout.flush()
    written = write_report(report)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
