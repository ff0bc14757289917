"""The sandboxed process that loads and runs a TorchScript model (``python -m`` this module).

Started only by :class:`miaudit.targets.model_process.ModelProcess`, with its scratch folder
and the parent's pid as arguments. In order: die with the parent; move the protocol off fds
0/1 (TorchScript's ``print`` writes to fd 1, which then goes to the stderr log); import torch
(one thread); cap resources and confine writes to the scratch folder with Landlock
(:mod:`miaudit.targets.sandbox`); only then read the model's bytes from the parent and
``torch.jit.load`` them; then answer one batch per frame until the parent closes the pipe.
If the sandbox cannot be set up, it says so and exits without reading the model.
"""

from __future__ import annotations

import io
import os
import sys
import warnings

from miaudit.targets.model_process import one_line, read_array, read_frame, write_array, write_frame

_FROM_PARENT_MAX = 1 << 40  # the parent is trusted: its frames are as large as the model file


def _reader(fd: int):  # noqa: ANN202
    def read_exact(n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    return read_exact


def _writer(fd: int):  # noqa: ANN202
    def write(data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            view = view[os.write(fd, view) :]

    return write


def _error_text(exc: BaseException) -> str:
    """TorchScript errors end with the Python-level error (``RuntimeError: ...``); others start with it."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return one_line(lines[-1] if type(exc).__name__ == "Error" or lines[0].startswith("The following operation failed") else lines[0])


def main(argv: list[str] | None = None) -> int:
    """Serve one TorchScript model over fds 0/1; returns the exit status."""
    from miaudit.targets import sandbox

    scratch, parent = (sys.argv[1:] if argv is None else argv)[:2]
    sandbox.die_with_parent()
    if os.getppid() != int(parent):  # the parent died before the line above took effect
        return 1
    read, write = _reader(os.dup(0)), _writer(os.dup(1))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    try:
        sandbox.limit_resources()
        sandbox.confine_writes_to(scratch)
    except (OSError, ValueError) as exc:
        write_frame(write, {"kind": "error", "message": f"cannot set up the sandbox: {exc}"})
        return 3

    header, payload = read_frame(read, _FROM_PARENT_MAX)
    if header["kind"] != "model":
        write_frame(write, {"kind": "error", "message": "expected the model first"})
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch >= 2.9 deprecates TorchScript
            module = torch.jit.load(io.BytesIO(payload), map_location="cpu")
        module.eval()
    except Exception as exc:  # corrupt archive, a plain torch.save file, or the model's own __setstate__  # noqa: BLE001
        write_frame(write, {"kind": "error", "message": f"cannot load it as a TorchScript archive (save one with torch.jit.save): {_error_text(exc)}"})
        return 4
    del payload
    write_frame(write, {"kind": "ready"})

    while True:
        try:
            header, payload = read_frame(read, _FROM_PARENT_MAX)
        except EOFError:
            return 0
        x = np.array(read_array(header, payload))
        try:
            with torch.inference_mode():
                out = module(torch.from_numpy(x))
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"the model must return one logits tensor, got {type(out).__name__}")
            arr = out.detach().to(torch.float64).contiguous().numpy()
        except Exception as exc:  # the model's own errors, e.g. a bad input shape  # noqa: BLE001
            write_frame(write, {"kind": "error", "message": _error_text(exc)})
            continue
        write_array(write, arr)


if __name__ == "__main__":
    sys.exit(main())
