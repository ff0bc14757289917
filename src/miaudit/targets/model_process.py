"""A model whose own code must run (TorchScript) in a separate, sandboxed process.

The auditing process never loads such a model. :class:`ModelProcess` starts
``python -m miaudit.targets.torchscript_child`` with a fresh scratch folder, sends it the model
file's bytes, then one batch of records per request, and reads back the outputs. The child
confines itself with Landlock (:mod:`miaudit.targets.sandbox`) before it reads the model: it may
read files but write only inside the scratch folder, and has no TCP.

The wire format, the same both ways: a 4-byte big-endian header length, a JSON header
(``{"kind": "array", "dtype": "<f4", "shape": [...], "nbytes": N}``, ``{"kind": "model", ...}``,
``{"kind": "ready"}`` or ``{"kind": "error", "message": ...}``), then ``nbytes`` raw bytes.
What comes back from the child is untrusted: never unpickled, the header capped at
:data:`MAX_HEADER` bytes, arrays only float64 or float32 with a shape whose size matches
``nbytes`` and at most :data:`MAX_REPLY` bytes, messages cut to one printable line, and every
read bounded by a timeout. The child's stderr goes to an unnamed temporary file whose last line
ends any error message.

The child is stopped by :meth:`ModelProcess.close` (also on ``with``, on garbage collection and
at interpreter exit), and dies with the parent: it exits on EOF on its input, and the kernel
kills it (``PR_SET_PDEATHSIG``) when the thread that started it exits, so start it from a
thread that outlives its use. (A parent killed outright leaves the scratch folder in TMPDIR.) Its environment is a fresh one (no API keys or tokens of the
parent's): ``PATH``, the Python paths, one thread, and ``HOME``/``TMPDIR`` in its scratch folder.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from miaudit.errors import DataError

MAX_HEADER = 4096
"""Largest JSON header accepted from the child (bytes)."""

MAX_REPLY = 256 << 20
"""Largest array accepted from the child in one reply (bytes)."""

LOAD_TIMEOUT = 180.0
"""Seconds the child may take to start, confine itself and load the model."""

CALL_TIMEOUT = 600.0
"""Seconds the child may take to answer one batch."""

_DTYPES = {"<f8": np.float64, "<f4": np.float32}
_CHILD = "miaudit.targets.torchscript_child"
_ENV_PASSED = ("PATH", "PYTHONHOME", "LD_LIBRARY_PATH", "LANG", "LC_ALL")  # not the rest: no API keys or tokens


class ProtocolError(Exception):
    """The other side sent something that is not a frame of the wire format."""


def one_line(text: str, limit: int = 300) -> str:
    """``text`` as one printable line of at most ``limit`` characters (for untrusted messages)."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def write_frame(write: Callable[[bytes], None], header: dict[str, Any], payload: bytes | memoryview = b"") -> None:
    """Send one frame: header length, JSON header (with ``nbytes``), payload."""
    head = json.dumps({**header, "nbytes": len(payload)}).encode()
    write(struct.pack(">I", len(head)) + head)
    if len(payload):
        write(payload)


def write_array(write: Callable[[bytes], None], arr: np.ndarray) -> None:
    """Send a float array as raw little-endian bytes with its dtype and shape."""
    a = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    write_frame(write, {"kind": "array", "dtype": a.dtype.str, "shape": list(a.shape)}, memoryview(a).cast("B"))


def read_frame(read_exact: Callable[[int], bytes], max_payload: int) -> tuple[dict[str, Any], bytes]:
    """One frame: ``(header, payload)``. ProtocolError unless it is well formed and within limits."""
    (size,) = struct.unpack(">I", read_exact(4))
    if not 2 <= size <= MAX_HEADER:
        raise ProtocolError(f"a header of {size} bytes")
    try:
        header = json.loads(read_exact(size).decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ProtocolError("a header that is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        raise ProtocolError("a header without a kind")
    nbytes = header.get("nbytes")
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or not 0 <= nbytes <= max_payload:
        raise ProtocolError(f"a payload of {nbytes!r} bytes (at most {max_payload})")
    return header, read_exact(nbytes) if nbytes else b""


def read_array(header: dict[str, Any], payload: bytes) -> np.ndarray:
    """The array a frame carries; ProtocolError unless dtype, shape and size agree."""
    dtype = _DTYPES.get(header.get("dtype"))  # type: ignore[arg-type]
    shape = header.get("shape")
    if header.get("kind") != "array" or dtype is None:
        raise ProtocolError(f"a {header.get('kind')!r} frame of dtype {header.get('dtype')!r}, not a float array")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 8 or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(f"an array shape {shape!r}")
    if int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize != len(payload):
        raise ProtocolError(f"an array of shape {shape} in {len(payload)} bytes")
    return np.frombuffer(payload, dtype=dtype).reshape(shape)


def _package_root() -> str:
    import miaudit

    return str(Path(miaudit.__file__).resolve().parents[1])


def _child_env(scratch: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in _ENV_PASSED if k in os.environ}
    paths = [_package_root(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)), PYTHONDONTWRITEBYTECODE="1", HOME=scratch, TMPDIR=scratch,
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
    )  # fmt: skip
    return env


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Close the child's input (it exits on EOF), kill it if it lingers, and reap it."""
    if proc.stdin is not None and not proc.stdin.closed:
        try:
            proc.stdin.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop(proc: subprocess.Popen[bytes], scratch: str, log: IO[bytes]) -> None:
    """Stop and reap the child, close its log, remove its scratch folder."""
    try:
        _reap(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    finally:
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)


class ModelProcess:
    """A TorchScript model loaded and run in a sandboxed child process.

    ``run(batch)`` sends float32 records and returns the model's outputs (validated float
    array); the model's own exceptions come back as RuntimeError (their message), anything else
    the child does wrong (crash, timeout, malformed reply) as :class:`DataError`, one line each.
    """

    def __init__(self, model_bytes: bytes, name: str, *, load_timeout: float = LOAD_TIMEOUT, call_timeout: float = CALL_TIMEOUT) -> None:
        self.name = name
        self.call_timeout = call_timeout
        self._lock = threading.Lock()  # one request at a time on the pipe
        self.scratch = tempfile.mkdtemp(prefix="miaudit-model-")
        self._log = tempfile.TemporaryFile()
        cmd = [sys.executable, "-P", "-B", "-m", _CHILD, self.scratch, str(os.getpid())]
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, cwd=self.scratch,
                env=_child_env(self.scratch), close_fds=True,
            )  # fmt: skip
        except OSError as exc:
            self._log.close()
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise DataError(f"cannot start a process for {name}: {exc}") from None
        self._finalizer = weakref.finalize(self, _stop, self._proc, self.scratch, self._log)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in = self._proc.stdin.fileno()
        self._out = self._proc.stdout.fileno()
        os.set_blocking(self._in, False)
        try:
            self._exchange(lambda w: write_frame(w, {"kind": "model"}, model_bytes), load_timeout, "ready", "load")
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._proc.pid

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's outputs on ``batch`` (float32 records), as the child computed them."""
        with self._lock:
            if not self._finalizer.alive:
                raise DataError(f"{self.name}'s process was closed")
            header, payload = self._exchange(lambda w: write_array(w, np.asarray(batch, dtype=np.float32)), self.call_timeout, "array", "answer")
            try:
                return read_array(header, payload)
            except ProtocolError as exc:
                raise self._failed(f"answered {exc}") from None

    def close(self) -> None:
        """Stop the child (idempotent)."""
        self._finalizer()

    def __enter__(self) -> ModelProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ talking to the child

    def _exchange(self, send: Callable[[Callable[[bytes], None]], None], timeout: float, expected: str, doing: str) -> tuple[dict[str, Any], bytes]:
        deadline = time.monotonic() + timeout
        try:
            try:
                send(lambda data: self._write_all(data, deadline))
            except BrokenPipeError:
                pass  # the child stopped reading: its reply, if it wrote one (an error), says why
            header, payload = read_frame(lambda n: self._read_exact(n, deadline), MAX_REPLY)
        except TimeoutError:
            self.close()
            raise DataError(f"{self.name} did not {doing} within {timeout:g} s; its process was stopped") from None
        except EOFError:
            raise self._failed("stopped") from None
        except ProtocolError as exc:
            raise self._failed(f"sent {exc}") from None
        if header["kind"] == "error":
            message = one_line(header.get("message", "")) or "no message"
            if doing == "answer":
                raise RuntimeError(message)  # the model's own exception, e.g. a bad input shape
            raise self._failed(message, with_log=False)
        if header["kind"] != expected:
            raise self._failed(f"sent a {one_line(header['kind'], 40)!r} frame instead of {expected!r}")
        return header, payload

    def _write_all(self, data: bytes | memoryview, deadline: float) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            if not select.select([], [self._in], [], max(0.0, deadline - time.monotonic()))[1]:
                raise TimeoutError
            try:
                view = view[os.write(self._in, view[: 1 << 20]) :]
            except BlockingIOError:
                continue

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks, left = [], n
        while left:
            if not select.select([self._out], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError
            chunk = os.read(self._out, min(left, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _failed(self, what: str, *, with_log: bool = True) -> DataError:
        """Stop the child; a one-line DataError saying what it did, its exit status and last stderr line."""
        _reap(self._proc)
        tail = self._last_log_line() if with_log else ""
        self.close()
        code = self._proc.returncode
        status = "" if code in (None, 0) else f" (exit status {code})" if code > 0 else f" (killed by signal {-code})"
        return DataError(f"{self.name}: the sandboxed model process {what}{status}" + (f"; its last message: {tail}" if tail else ""))

    def _last_log_line(self) -> str:
        try:
            self._log.seek(max(0, os.fstat(self._log.fileno()).st_size - 4096))
            lines = [ln for ln in self._log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return one_line(lines[-1]) if lines else ""
