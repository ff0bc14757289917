"""Versions of the software behind a result, recorded beside it (results, studies, the report)."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

PACKAGES = ("miaudit", "numpy", "scipy", "scikit-learn", "torch", "matplotlib", "jinja2")


def versions() -> dict[str, Any]:
    """Python and the installed versions of the packages a result depends on."""
    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
