"""Where torch models train and answer queries: the run's device (``--device auto|cpu|cuda``).

The device belongs to the run, not to a model's identity: a command enters :func:`use_device`
once, and ``train_one``, the ModelBank, :class:`~miaudit.models.classifier.TorchClassifier`
and the white-box gradients read :func:`current_device`. Trained modules always come back on
the CPU, so caching, saving and the numpy-facing attacks never see a device tensor. The CPU
path is the default and untouched (same kernels, same results as without this module).

On CUDA the run asks torch for deterministic algorithms (``torch.use_deterministic_algorithms``
with ``warn_only``, cuDNN's non-benchmarking deterministic mode, cuBLAS's fixed workspace), so a
CUDA run repeats itself where torch has deterministic kernels; torch warns where it has none
(on CUDA, e.g., the backward of max-pooling accumulates with atomics). CUDA results are not
those of the CPU (other kernels, other summation order), so the model cache keys say the device
whenever it is not the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from miaudit.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
CPU = torch.device("cpu")

_current: ContextVar[torch.device] = ContextVar("miaudit_device", default=CPU)


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else the CPU; ``cpu``; ``cuda`` (a ConfigError
    saying what to do when there is none)."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    available = torch.cuda.is_available()
    if name == "cuda" and not available:
        raise ConfigError("--device cuda: torch sees no CUDA GPU here (a CPU build of torch, or no driver); use --device cpu or auto")
    if name == "cuda" or (name == "auto" and available):
        return torch.device("cuda")
    return CPU


def current_device() -> torch.device:
    """The device this run trains and queries torch models on (the CPU unless a command chose)."""
    return _current.get()


@contextmanager
def use_device(name: str | torch.device) -> Iterator[torch.device]:
    """Train and query on ``name`` (a :data:`DEVICES` name or a torch device) inside the block."""
    device = name if isinstance(name, torch.device) else resolve_device(name)
    if device.type == "cuda":
        _deterministic_cuda()
    token = _current.set(device)
    try:
        yield device
    finally:
        _current.reset(token)


def _deterministic_cuda() -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def cache_tag() -> str:
    """What the model cache key adds for the current device: nothing on the CPU (keys as before)."""
    device = current_device()
    return "" if device.type == "cpu" else f"device={device.type}"
