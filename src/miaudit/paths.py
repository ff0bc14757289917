"""Where miaudit reads data and keeps its cache. Environment variables override the defaults."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "MIAUDIT_DATA_DIR"
CACHE_DIR_ENV = "MIAUDIT_CACHE_DIR"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit`` if given, else ``$MIAUDIT_DATA_DIR``, else ``~/.miaudit/data``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".miaudit" / "data"


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: ``explicit``, else ``$MIAUDIT_CACHE_DIR``, else ``~/.miaudit/cache``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".miaudit" / "cache"
