"""The setups that make a case's bad condition on its copy of the fixtures: files written,
truncated or scrambled, a read-only dir, a full disk, a port already taken, a corpus rebuilt.

Each `make_*` returns a setup (a callable on the case's `Context`); `chain` runs several.
A fault this machine cannot make raises `Skip` with the reason, and the case is SKIPPED.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from tools.battery.harness import Context, Skip

Setup = Callable[[Context], object]


def chain(*setups: Setup) -> Setup:
    """One setup that runs `setups` in order."""

    def run(ctx: Context) -> None:
        for setup in setups:
            setup(ctx)

    return run


def write(rel: str, data: str | bytes) -> Setup:
    """Write `data` to `rel` (parents made), replacing what was there."""

    def run(ctx: Context) -> None:
        path = ctx.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return run


def mkdir(rel: str) -> Setup:
    """An empty directory at `rel`."""
    return lambda ctx: (ctx.dir / rel).mkdir(parents=True, exist_ok=True)


def remove(rel: str) -> Setup:
    """Delete the file `rel`."""
    return lambda ctx: (ctx.dir / rel).unlink()


def random_bytes(rel: str, size: int = 4096, seed: int = 0) -> Setup:
    """Replace `rel` with `size` seeded random bytes (same name, nothing like the format)."""
    return write(rel, random.Random(seed).randbytes(size))


def truncate(rel: str, keep: float = 0.5) -> Setup:
    """Cut `rel` to the first `keep` fraction of its bytes (a copy interrupted mid-way)."""

    def run(ctx: Context) -> None:
        path = ctx.dir / rel
        path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])

    return run


def truncate_all(pattern: str, keep: float = 0.5) -> Setup:
    """Truncate every file matching the glob `pattern` (relative to the case dir)."""

    def run(ctx: Context) -> None:
        paths = sorted(ctx.dir.glob(pattern))
        if not paths:
            raise RuntimeError(f"nothing matches {pattern}")
        for path in paths:
            truncate(str(path.relative_to(ctx.dir)), keep)(ctx)

    return run


def flip_byte(rel: str) -> Setup:
    """Invert one byte in the middle of `rel` (silent corruption; same size)."""

    def run(ctx: Context) -> None:
        path = ctx.dir / rel
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    return run


def _mount(*args: str) -> str | None:
    """`mount args...`; None when it worked, else why not."""
    try:
        proc = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit {proc.returncode}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=True)


def read_only(rel: str) -> Setup:
    """Make the dir `rel` (created if missing, with what the case put there) unwritable:
    chmod 555 for a normal user; as root, whom modes do not stop, a read-only bind mount of the
    dir onto itself, or Skip when mounting is not permitted."""

    def run(ctx: Context) -> None:
        path = ctx.dir / rel
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            mode = path.stat().st_mode
            path.chmod(0o555)
            ctx.cleanups.append(lambda: path.chmod(mode))
            return
        root = "running as root (chmod 555 does not stop root) and"
        why = _mount("--bind", str(path), str(path))
        if why:
            raise Skip(f"{root} a bind mount was refused: {why}")
        ctx.cleanups.append(lambda: _umount(path))
        why = _mount("-o", "remount,bind,ro", str(path))
        if why:
            raise Skip(f"{root} a read-only remount was refused: {why}")

    return run


def full_disk(rel: str, size: str = "1m") -> Setup:
    """Mount a `size` tmpfs at `rel` and fill it to the last byte with `rel/filler`, or Skip
    when this machine does not permit mounting a tmpfs."""

    def run(ctx: Context) -> None:
        path = ctx.dir / rel
        path.mkdir(parents=True, exist_ok=True)
        why = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        if why:
            raise Skip(f"cannot mount a small tmpfs to fill: {why}")
        ctx.cleanups.append(lambda: _umount(path))
        with open(path / "filler", "wb", buffering=0) as f:
            for chunk in (65536, 4096, 1):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise

    return run


def port_in_use(ctx: Context) -> None:
    """Listen on a free 127.0.0.1 port for the duration of the case and pass `port=<it>`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    ctx.cleanups.append(sock.close)
    ctx.extra_args.append(f"port={sock.getsockname()[1]}")


def free_port(ctx: Context) -> None:
    """Pass `port=<a port free right now>`, so a chat that wrongly serves takes no one's port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        ctx.extra_args.append(f"port={sock.getsockname()[1]}")


def rebuild_corpus(*overrides: str) -> Setup:
    """Rebuild the prepared corpus in place with scripts/prepare.py --force and `overrides`
    (e.g. another source seed: a different corpus with the same vocabulary size)."""
    return lambda ctx: ctx.run("scripts/prepare.py", *overrides, "--force")
