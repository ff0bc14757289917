"""One mapping from every failure to what the user sees: one line and an exit code.

A failure the user or a file can cause (miaudit's own errors, bad options, the file system,
memory, an input nested too deeply, a model file a library cannot read) is one line on stderr
and exit 2. Anything else is a bug in miaudit: its traceback, a request to report it, exit 70.
``--verbose`` adds the traceback to every error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

from miaudit.cli.common import UsageError
from miaudit.errors import MiauditError

USER_ERROR = 2
INTERNAL_ERROR = 70  # EX_SOFTWARE

# Libraries that raise on the content of a file handed in (a model file they cannot parse):
# their own exception types are the file's fault, not miaudit's.
_FILE_LIBRARIES = ("onnxruntime", "onnx", "skops", "safetensors", "PIL", "zipfile")

_MIAUDIT_ROOT = str(Path(__file__).resolve().parents[1])


def report_failure(exc: BaseException, *, verbose: bool = False) -> int:
    """Print ``exc`` for the user and return the exit code (2 user error, 70 bug)."""
    message = user_message(exc)
    if message is None:
        traceback.print_exception(exc, file=sys.stderr)
        print(
            f"internal error: {type(exc).__name__}: {_first_line(exc)}. This is a bug in miaudit; "
            "please report it with the command you ran and the traceback above",
            file=sys.stderr,
        )
        return INTERNAL_ERROR
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    return USER_ERROR


def user_message(exc: BaseException) -> str | None:
    """The one-line message of a failure the user can fix, or None for an internal bug."""
    if isinstance(exc, (MiauditError, UsageError)):
        return _first_line(exc)
    if isinstance(exc, MemoryError) or _is_torch_allocation_failure(exc):
        return (
            "out of memory: an input, or the sizes it asks for, need more memory than this machine has; "
            "use a smaller input or lower the sizes (see --limit in the README's 'What miaudit refuses')"
        )
    if isinstance(exc, RecursionError):
        return "an input is nested too deeply to read; flatten it"
    if isinstance(exc, OSError):
        return _os_message(exc)
    root = type(exc).__module__.split(".")[0]
    if root in _FILE_LIBRARIES:
        return f"a file could not be read by {root} ({type(exc).__name__}: {_first_line(exc)[:300]})"
    return None


def _os_message(exc: OSError) -> str:
    where = f" {str(exc.filename)!r}" if exc.filename else ""
    reason = exc.strerror or _first_line(exc)
    advice = {
        errno.EACCES: "check its permissions",
        errno.EPERM: "check its permissions",
        errno.EROFS: "the file system is read-only; choose another folder",
        errno.ENOSPC: "the disk is full; free space or choose another folder",
        errno.EDQUOT: "the disk quota is exhausted; free space or choose another folder",
        errno.ENOENT: "check the path",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "it is a folder where a file was expected",
        errno.EEXIST: "something is already there; remove it or choose another path",
        errno.ENAMETOOLONG: "the name is too long; choose a shorter one",
    }.get(exc.errno or 0, "check the path")
    return f"cannot use{where}: {reason}; {advice}"


def _is_torch_allocation_failure(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def quiet_warnings(verbose: bool) -> Iterator[None]:
    """miaudit's own warnings (``warnings.warn`` in miaudit, a UserWarning) as one ``warning:``
    line; every other warning only with ``--verbose``."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file=None, line=None) -> None:  # noqa: ANN001
        if verbose:
            print(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), file=sys.stderr)
        elif category is UserWarning and os.path.abspath(filename).startswith(_MIAUDIT_ROOT):
            # numpy's RuntimeWarnings are attributed to the miaudit line that called numpy: hidden
            print(f"warning: {str(message).strip().splitlines()[0]}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield
