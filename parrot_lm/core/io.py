"""Atomic file IO: the one way ParrotLM writes a file or a directory.

Every writer (checkpoints, shards, meta.json, tokenizer files, run configs, exports, eval
results, reports) goes through here, so each output is either complete or absent:

- the data goes to a temporary sibling (`.<name>.tmp-<pid>`, same directory, so the rename
  cannot cross a filesystem), is flushed and fsynced;
- the temporary is renamed over the target (`os.replace`, atomic on POSIX) and the directory is
  fsynced, so the rename itself survives a power cut;
- on any failure the temporary is removed, and an OSError (no space, read-only, permission)
  becomes one `StorageError` sentence naming the path.

Temporaries left by a killed process (SIGKILL runs no cleanup) carry its pid;
`remove_stale_temporaries` deletes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from parrot_lm.core.errors import StorageError

_TMP_RE = re.compile(r"^\.(.+)\.(?:tmp|old)-(\d+)$")


def temp_path(path: Path, kind: str = "tmp") -> Path:
    """`dir/.name.tmp-<pid>`: a sibling that only this process writes."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def storage_error(path: Path | str, error: OSError, doing: str = "write") -> StorageError:
    """One sentence for an OSError on `path`: what failed, why, and what to do."""
    why = error.strerror or str(error) or type(error).__name__
    hint = {
        errno.ENOSPC: "free some disk space or choose another place",
        errno.EDQUOT: "free some disk space or choose another place",
        errno.EROFS: "the filesystem is read-only; choose a writable place",
        errno.EACCES: "check the permissions or choose another place",
        errno.EPERM: "check the permissions or choose another place",
    }.get(error.errno, "check the path and try again")
    return StorageError(f"Cannot {doing} {path} ({why}); {hint}.")


MIN_FREE_BYTES = 4096  # below this, no file can be written at all


def check_writable(path: str | os.PathLike) -> None:
    """Refuse, before anything is written, a directory that cannot be created or written:
    its nearest existing ancestor must be writable and its filesystem not full (a read-only
    filesystem, a missing permission or a full disk fails here with one sentence instead of
    deep inside a library).

    Raises StorageError naming `path`.
    """
    path = Path(path).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if os.access(existing, os.W_OK | os.X_OK):
        try:
            stats = os.statvfs(existing)
        except OSError:
            return
        if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:  # not even one block left
            raise storage_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    code = errno.EROFS if read_only else errno.EACCES
    raise storage_error(path, OSError(code, os.strerror(code), str(existing)))


def fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def discard(path: Path) -> None:
    """Remove the file `path` if it is there and can be removed: cleaning up after a failed
    write must not raise over the failure itself (on a read-only filesystem even removing a
    file that is not there fails)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; on a clean exit it is fsynced and
    renamed over `path`, on any exception it is removed and `path` is untouched.

    Raises StorageError (one sentence naming `path`) for an OSError while writing.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        discard(tmp)
        raise storage_error(path, e) from e
    except BaseException:
        discard(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write `data` to `path` atomically (see the module docstring)."""
    with atomic_file(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


# Rust-backed libraries (safetensors, tokenizers) raise their own errors for a failed write,
# with std::io::Error's text in the message: "... No space left on device (os error 28)".
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def as_os_error(error: BaseException) -> OSError | None:
    """The OSError behind `error`: itself, one in its cause/context chain, or the errno a
    Rust-backed library wrote into its message; None when it is not a storage failure."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        match = _RUST_OS_ERROR.search(str(seen))
        if match:
            code = int(match.group(1))
            return OSError(code, os.strerror(code))
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary sibling directory of `out`; on a clean exit it replaces `out`
    (an existing `out` is moved aside first and removed after), on any exception it goes.

    Raises StorageError for an OSError while building or renaming.
    """
    out = Path(out)
    tmp = temp_path(out)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        _fsync_tree(tmp)
        if out.exists():
            old = temp_path(out, "old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        cause = as_os_error(e)
        if cause is None:
            raise
        raise storage_error(out, cause) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(out.parent)


def swap_files_in(
    stage: Path, directory: Path, files: Sequence[str], marker: str, stale: Iterable[Path] = ()
) -> None:
    """Move a complete set of files from `stage` into `directory`, where the file `marker`
    (e.g. meta.json) is what makes them valid: the old marker goes first, the new files are
    renamed in, the `stale` files not among them are removed, and the new marker comes last.
    Files are renamed, never rewritten, so a failure leaves no marker rather than a wrong one.

    Raises StorageError for an OSError while moving.
    """
    try:
        (directory / marker).unlink(missing_ok=True)
        for name in files:
            os.replace(stage / name, directory / name)
        for path in stale:
            if path.name not in files:
                path.unlink(missing_ok=True)
        os.replace(stage / marker, directory / marker)
    except OSError as e:
        raise storage_error(directory, e) from e
    fsync_dir(directory)


def _fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        else:
            fsync_dir(path)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporaries (`.name.tmp-<pid>`, `.name.old-<pid>`) in `directory` whose
    process is gone; returns what was removed. Never touches a live process's files."""
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        match = _TMP_RE.match(path.name)
        if match is None or pid_alive(int(match.group(2))):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
