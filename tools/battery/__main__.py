"""`python -m tools.battery [--jobs 2] [--out outputs/battery] [--only TEXT] [--keep]`: build the
fixtures in a scratch dir, try every case, print the Markdown report and write
`<out>/battery.md` and `<out>/battery.json`. Exits 0 whatever the verdicts (it measures)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from parrot_lm.core.io import atomic_write_text
from tools.battery.cases import CASES
from tools.battery.fixtures import build_fixtures
from tools.battery.harness import Case, Result, try_case
from tools.battery.report import as_json, markdown


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.battery", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--out", type=Path, default=Path("outputs/battery"), help="report dir")
    parser.add_argument("--only", action="append", default=[], help="cases whose name has TEXT")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (debugging)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    ns = parser.parse_args(argv)
    if ns.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {ns.jobs}")
    return ns


def run_cases(cases: list[Case], fixtures: Path, scratch: Path, jobs: int) -> list[Result]:
    """Try `cases` on `jobs` threads (each a subprocess at a time); results in case order."""
    results: dict[str, Result] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(try_case, case, fixtures, scratch): case for case in cases}
        for done, future in enumerate(as_completed(futures), 1):
            r = future.result()
            results[r.name] = r
            why = f": {r.reason}" if r.reason else ""
            print(f"[{done}/{len(cases)}] {r.verdict:7} {r.name} ({r.seconds:.0f} s){why}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return [results[case.name] for case in cases]


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    cases = [c for c in CASES if not ns.only or any(t in c.name for t in ns.only)]
    if ns.list:
        for case in cases:
            print(f"{case.name:40} {case.kind:11} python {' '.join(case.args)}")
        return 0
    command = "python -m tools.battery " + " ".join(sys.argv[1:] if argv is None else argv)
    scratch = Path(tempfile.mkdtemp(prefix="parrot-battery-"))
    start = time.monotonic()
    try:
        print(f"[battery] fixtures in {scratch} ...", file=sys.stderr, flush=True)
        fixtures = build_fixtures(scratch)
        results = run_cases(cases, fixtures, scratch / "cases", ns.jobs)
    finally:
        if ns.keep:
            print(f"[battery] kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    text = markdown(results, command.strip())
    ns.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ns.out / "battery.md", text)
    atomic_write_text(ns.out / "battery.json", as_json(results, command.strip()))
    print(text)
    print(f"[battery] {time.monotonic() - start:.0f} s; wrote {ns.out}/battery.md and .json",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
