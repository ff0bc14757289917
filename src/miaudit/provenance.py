"""Versions of the software behind a result, recorded beside it (results, studies, the report)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = ("miaudit", "numpy", "scipy", "scikit-learn", "torch", "matplotlib", "jinja2")


def versions() -> dict[str, Any]:
    """Python, the installed versions of the packages a result depends on, and the device torch
    models ran on (``--device``)."""
    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(), "device": _device()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _device() -> str:
    """The run's torch device type; "cpu" when no torch model ran (the device module is unloaded)."""
    device = sys.modules.get("miaudit.models.device")
    return "cpu" if device is None else device.current_device().type
