"""Run the miaudit CLI in a child process and measure what it took: exit code, output, peak RSS.

For tests of inputs that could take the machine's memory: the child runs under an address-space
limit (``RLIMIT_AS``) as a safety net, so a regression fails the test instead of the machine,
and its peak resident memory comes from ``os.wait4``'s resource usage.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
DEFAULT_RLIMIT_AS = 6 << 30  # torch alone reserves a few GB of address space


@dataclass(frozen=True)
class Result:
    """What the child did: exit code (negative: killed by that signal), output, peak RSS in MiB."""

    rc: int
    stdout: str
    stderr: str
    max_rss_mb: float
    timed_out: bool = False


def run_cli(
    argv: Sequence[str],
    cwd: str | os.PathLike[str],
    env_extra: dict[str, str] | None = None,
    rlimit_as: int = DEFAULT_RLIMIT_AS,
    timeout: float = 120.0,
) -> Result:
    """``python -m miaudit *argv`` in ``cwd`` with this checkout's ``src`` on PYTHONPATH.

    The child is reaped with ``os.wait4`` (not ``Popen.wait``) to read its ``ru_maxrss``
    (KiB on Linux); output goes through temporary files, so a chatty child cannot block on a
    full pipe. A child still running after ``timeout`` seconds is killed (``timed_out``).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH", "")) if p)
    env.update(env_extra or {})

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "miaudit", *argv], cwd=cwd, env=env, stdout=out, stderr=err, preexec_fn=limit_memory
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Result(
            rc=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            max_rss_mb=usage.ru_maxrss / 1024,
            timed_out=killed.is_set(),
        )
