"""The folders a command writes, checked before any work: the results folder (``--out``) and
the model cache.

An audit can run for an hour; finding only at the end that ``--out`` is a file, read-only, or
the cache itself would lose every result. So a command checks both first (:func:`claim_out_dir`),
and holds a lock on ``--out`` while it runs, so two commands never write one folder at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from miaudit.errors import ConfigError
from miaudit.paths import cache_dir as default_cache_dir
from miaudit.paths import data_dir as default_data_dir

LOCK_FILE = ".lock"


def check_writable_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` as a folder miaudit can write; ConfigError naming ``flag`` if it is empty, a
    file, under a file, or not writable. Creates nothing: an existing folder is probed with a
    temporary file, an absent one by the permissions of its nearest existing parent."""
    if not str(path).strip():
        raise ConfigError(f"{flag} is empty; name a folder")
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {str(p)!r} is a file, not a folder; choose a folder")
    existing = next(a for a in (p, *p.absolute().parents) if a.exists())
    try:
        if not existing.is_dir():
            raise OSError(errno.ENOTDIR, "not a folder")
        if existing == p:
            with tempfile.NamedTemporaryFile(dir=p, prefix=".probe-"):
                pass
        elif not os.access(existing, os.W_OK | os.X_OK):  # access(2) also reports read-only file systems
            raise OSError(errno.EROFS if _read_only(existing) else errno.EACCES, "not writable")
    except OSError as exc:
        reason = {
            errno.EACCES: "is not writable (permission denied)",
            errno.EPERM: "is not writable (permission denied)",
            errno.EROFS: "is on a read-only file system",
            errno.ENOSPC: "is on a full disk",
            errno.ENOTDIR: "lies under a file, not a folder",
            errno.ENAMETOOLONG: "has a name that is too long",
        }.get(exc.errno or 0, f"cannot be written ({exc.strerror or exc})")
        raise ConfigError(f"{flag} {str(p)!r} {reason}; choose another folder") from None
    return p


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def check_cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The model cache folder (``--cache-dir``, ``$MIAUDIT_CACHE_DIR`` or the default), usable."""
    return check_writable_dir(default_cache_dir(explicit), "the model cache (--cache-dir / $MIAUDIT_CACHE_DIR)")


def check_out_dir(
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """``--out`` as a writable folder that is not ``/``, the model cache or the data folder (nor
    inside them), since results written there would mix with, or be mistaken for, the files
    miaudit trusts."""
    if not str(path).strip():
        raise ConfigError("--out is empty; name a results folder")
    p = Path(path).expanduser()
    resolved = p.resolve()
    if resolved == Path(resolved.anchor):
        raise ConfigError(f"--out {str(p)!r} is the root of the file system; choose a results folder")
    for name, other in (
        ("the model cache", default_cache_dir(cache_dir)),
        ("the data folder", default_data_dir(data_dir)),
    ):
        other = other.resolve()
        if resolved == other or other in resolved.parents:
            raise ConfigError(f"--out {str(p)!r} overlaps {name} ({other}); choose a separate results folder")
    return check_writable_dir(p, "--out")


@contextlib.contextmanager
def locked(run_dir: Path, what: str = "miaudit run") -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (released by the OS even on SIGKILL).

    The lock is an ``flock`` on ``run_dir/.lock``, removed on exit while still held, so a
    finished command leaves no file behind. A process that opened the file just before it
    was removed would hold a lock on a file no longer there; it checks that the path still
    names the file it locked, and starts over otherwise.
    """
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    while True:
        f = open(path, "w")  # noqa: SIM115 - held open for the duration of the lock
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise ConfigError(f"another {what} is using {run_dir}; wait for it or choose another --out") from None
        try:
            if os.path.exists(path) and os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                break
        except OSError:
            pass
        f.close()  # removed by the holder as we opened it: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        f.close()


def check_folders(
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    uses_cache: bool = True,
) -> Path:
    """:func:`check_out_dir`, and :func:`check_cache_dir` when the command trains models."""
    out = check_out_dir(path, cache_dir=cache_dir, data_dir=data_dir)
    if uses_cache:
        check_cache_dir(cache_dir)
    return out


@contextlib.contextmanager
def claim_out_dir(
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    uses_cache: bool = True,
) -> Iterator[Path]:
    """Check ``--out`` (and the cache, when the command trains models) and lock ``--out`` for
    the duration: ``with claim_out_dir(args.out, ...) as out: ...``."""
    out = check_folders(path, cache_dir=cache_dir, data_dir=data_dir, uses_cache=uses_cache)
    created = not out.exists()
    try:
        with locked(out, "miaudit command"):
            yield out
    except BaseException:
        if created and not any(out.iterdir()):  # a command that failed leaves no empty folder behind
            out.rmdir()
        raise
