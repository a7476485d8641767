"""The battery's machinery: a case, the scratch fixtures every case copies, running one case in
a subprocess, and the verdict on what it did.

A bad input is handled well (GOOD) only when all of these hold:

- the process exits non-zero (and is not killed by a signal or the time limit);
- neither stdout nor stderr holds a Python traceback;
- the last non-empty line of stderr is the error, one sentence: `error: <words>` (ParrotLM's
  `exit_on_user_error`, argparse's `prog: error: ...`, a logger's `ERROR: ...`), with nothing
  after it, of at least three words and at most two sentences (not a pasted paragraph);
- the case's copy of the fixtures is byte for byte what it was before, and nothing was added:
  a refused command writes nothing.

Good-path controls (`Case.control`) must instead exit 0 without a traceback; they show that the
harness can tell a working command from a refusal.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOOD, BAD, SKIPPED = "GOOD", "BAD", "SKIPPED"
OK, FAILED = "OK", "FAILED"  # the verdicts of a control
# `error: ...`, `prog: error: ...`, uvicorn's `ERROR:    ...`: the sentence a user reads.
ERROR_LINE = re.compile(r"^(?:\S+: )?error:\s*(?P<message>\S.*)$", re.IGNORECASE)
MIN_SENTENCE_WORDS = 3
# "one sentence": a second full stop is tolerated (`X failed. Do Y.`), a third is a paragraph
# (e.g. a library's whole explanation pasted after ours).
SENTENCE_BREAK = re.compile(r"[.!?]\s+[A-Z`]")
MAX_SENTENCE_BREAKS = 1
LISTED_FILES = 6  # changed files named in a reason, then a count
STDERR_TAIL_LINES = 12  # kept in battery.json for each case


class Skip(Exception):
    """Raised by a case's setup when this machine cannot make the fault (the reason is kept)."""


@dataclass
class Context:
    """What a case's setup works on: its own copy of the fixtures (`dir`, also the command's
    cwd), arguments to append to the command, and cleanups to run after it (unmounts, sockets)."""

    dir: Path
    extra_args: list[str] = field(default_factory=list)
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
        """Run an entry point (`args` after `python`, the script relative to the repo) in this
        case's dir, for a setup that needs one (e.g. rebuilding a corpus); fails loudly."""
        proc = subprocess.run(
            [sys.executable, str(ROOT / args[0]), *args[1:]],
            cwd=self.dir,
            env=command_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"setup command {args} failed: {last_line(proc.stderr)}")
        return proc


@dataclass(frozen=True)
class Case:
    """One input tried as a user would: `args` after `python` (the entry point relative to the
    repo root, then its arguments), run in a fresh copy of the fixtures after `setup` made the
    bad condition there. `control`: a valid command that must succeed."""

    name: str
    kind: str
    args: tuple[str, ...]
    setup: Callable[[Context], object] | None = None
    control: bool = False
    timeout: float = 240.0
    stdin: str | None = None

    @property
    def entry(self) -> str:
        """The entry point's name (train, resume, prepare, evaluate, ...)."""
        if any(arg.startswith("resume=") for arg in self.args):
            return "resume"
        return Path(self.args[0]).stem


@dataclass
class Result:
    """What one case did and the verdict on it."""

    name: str
    kind: str
    entry: str
    command: str
    control: bool
    verdict: str
    reason: str = ""
    returncode: int | None = None
    error_line: str = ""
    seconds: float = 0.0
    stderr_tail: str = ""  # the last lines a user saw, for whoever fixes a BAD case


def command_env() -> dict[str, str]:
    """The environment of every command: the repo importable, Hydra's short errors, no GPU."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HYDRA_FULL_ERROR": "0",
        "PYTHONUNBUFFERED": "1",
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }


def tree_sha256(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path -> sha256), dir (-> "dir") and symlink (-> its
    target): compared before and after a refused command."""
    tree: dict[str, str] = {}
    if not root.exists():
        return tree
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            tree[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            tree[rel] = "dir"
        elif path.is_file():
            try:
                tree[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as e:  # unreadable: still a difference worth naming
                tree[rel] = f"unreadable: {e.strerror}"
    return tree


def tree_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """`+path` (added), `-path` (removed), `~path` (changed), sorted by path."""
    changes = [f"+{p}" for p in after.keys() - before.keys()]
    changes += [f"-{p}" for p in before.keys() - after.keys()]
    changes += [f"~{p}" for p in before.keys() & after.keys() if before[p] != after[p]]
    return sorted(changes, key=lambda c: c[1:])


def last_line(text: str) -> str:
    """The last non-empty line of `text`, stripped ('' when there is none)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _listed(changes: list[str]) -> str:
    shown = ", ".join(changes[:LISTED_FILES])
    more = len(changes) - LISTED_FILES
    return shown + (f" (+{more} more)" if more > 0 else "")


def verdict(
    proc: subprocess.CompletedProcess,
    before: dict[str, str] | None = None,
    after: dict[str, str] | None = None,
    *,
    control: bool = False,
) -> tuple[str, str]:
    """(verdict, reason) for a finished command: GOOD/BAD for a bad input, OK/FAILED for a
    control; the reason says what was wrong (empty when nothing was). `before`/`after` are
    `tree_sha256` of the case's fixtures around the command (None: not compared)."""
    out = (proc.stdout or "") + (proc.stderr or "")
    rc = proc.returncode
    traceback = "Traceback (most recent call last)" in out
    if control:
        if rc != 0:
            return FAILED, f"exit {rc}: {last_line(proc.stderr) or last_line(proc.stdout)}"
        return (FAILED, "traceback in the output") if traceback else (OK, "")
    reasons = []
    if rc == 0:
        reasons.append("exit 0 (the bad input was accepted)")
    elif rc < 0:
        reasons.append(f"killed by signal {-rc}")
    if traceback:
        reasons.append("traceback")
    reasons += _error_line_problems(proc.stderr or "")
    if before is not None and after is not None:
        changes = tree_changes(before, after)
        if changes:
            reasons.append(f"files changed: {_listed(changes)}")
    return (BAD, "; ".join(reasons)) if reasons else (GOOD, "")


def _error_line_problems(stderr: str) -> list[str]:
    """Why stderr does not end in one error sentence (empty when it does)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ["no error message on stderr"]
    errors = [i for i, line in enumerate(lines) if ERROR_LINE.match(line)]
    last = lines[-1]
    if not errors:
        return [f"no 'error:' sentence; stderr ends: {last[:160]!r}"]
    if errors[-1] != len(lines) - 1:
        after = len(lines) - 1 - errors[-1]
        return [f"multi-line error: {after} line(s) after the error, ending {last[:120]!r}"]
    message = ERROR_LINE.match(last).group("message")
    if len(message.split()) < MIN_SENTENCE_WORDS:
        return [f"error is not a sentence: {last[:160]!r}"]
    sentences = len(SENTENCE_BREAK.findall(message)) + 1
    if sentences > MAX_SENTENCE_BREAKS + 1:
        return [f"error is not one sentence ({sentences} sentences, {len(last)} chars)"]
    return []


def run_command(case: Case, ctx: Context) -> tuple[subprocess.CompletedProcess, float]:
    """Run the case's command in `ctx.dir` in its own process group (killed whole at the time
    limit); returns the completed process (returncode -9 on a timeout) and its seconds."""
    import time

    cmd = [sys.executable, str(ROOT / case.args[0]), *case.args[1:], *ctx.extra_args]
    start = time.monotonic()
    with subprocess.Popen(
        cmd,
        cwd=ctx.dir,
        env=command_env(),
        stdin=subprocess.PIPE if case.stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(case.stdin, timeout=case.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += f"\n[battery] timed out after {case.timeout:.0f} s"
    seconds = time.monotonic() - start
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), seconds


def try_case(case: Case, fixtures: Path, scratch: Path) -> Result:
    """Copy the fixtures, make the case's fault, run it, judge it, clean up."""
    ctx = Context(scratch / case.name)
    shown = " ".join(["python", *case.args])
    result = Result(case.name, case.kind, case.entry, shown, case.control, SKIPPED)
    try:
        shutil.copytree(fixtures, ctx.dir, symlinks=True)
        if case.setup is not None:
            case.setup(ctx)
        if ctx.extra_args:
            result.command = " ".join([shown, *ctx.extra_args])
        before = tree_sha256(ctx.dir)
        proc, result.seconds = run_command(case, ctx)
        after = tree_sha256(ctx.dir)
        if proc.returncode == -signal.SIGKILL and "[battery] timed out" in proc.stderr:
            result.verdict = FAILED if case.control else BAD
            result.reason = f"timed out after {case.timeout:.0f} s (neither refused nor finished)"
        else:
            result.verdict, result.reason = verdict(proc, before, after, control=case.control)
        result.returncode = proc.returncode
        result.error_line = last_line(proc.stderr)[:300]
        result.stderr_tail = "\n".join(proc.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
    except Skip as e:
        result.reason = str(e)
    except Exception as e:  # a setup that broke: say so, never count it as either verdict
        result.reason = f"setup failed: {type(e).__name__}: {e}"
    finally:
        for cleanup in reversed(ctx.cleanups):
            try:
                cleanup()
            except Exception as e:
                print(f"[battery] cleanup of {case.name} failed: {e}", file=sys.stderr)
        shutil.rmtree(ctx.dir, ignore_errors=True)
    return result
