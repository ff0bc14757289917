"""Bounds on everything a user or a file hands in, each raisable with ``--limit NAME=VALUE``.

A hostile or mistaken input must not take the machine's memory, disk or time: a 1.5 MB
``.npz`` can expand to gigabytes, two labels ``{0, 2**40}`` would ask for 2**40 class names, a
``model.json`` can point at ``/dev/zero``. Every reader checks the size it is about to allocate
*before* allocating it, against the table below, and refuses with one line that names the
limit and the flag that raises it.

The limits in force live in a context variable: the CLI sets them from ``--limit`` for the
whole command, the Python API (:func:`use_limits`) for a ``with`` block. Defaults suit a
laptop auditing a tabular or small-image model; raise them for bigger audits.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from miaudit.errors import ConfigError, MiauditError

MIB = 1 << 20


class LimitError(MiauditError):
    """An input larger than a limit of :class:`Limits` (raise it with ``--limit NAME=VALUE``)."""


@dataclass(frozen=True)
class Limits:
    """The bounds in force. Sizes are bytes, counts are items; meanings in ``_DESCRIPTIONS``."""

    file_bytes: int = 2048 * MIB
    array_bytes: int = 1024 * MIB
    records: int = 10_000_000
    features: int = 1_000_000
    classes: int = 100_000
    models: int = 1024
    json_bytes: int = 16 * MIB
    json_depth: int = 64
    response_bytes: int = 256 * MIB
    image_pixels: int = 16_777_216
    model_parameters: int = 1_000_000_000

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def description(cls, name: str) -> str:
        """The one-line meaning of limit ``name`` (for ``--help`` and the README's table)."""
        return _DESCRIPTIONS[name]


_DESCRIPTIONS = {
    "file_bytes": "an input file read whole or parsed (CSV, .npz, model file, image)",
    "array_bytes": "expanded size of what one input makes miaudit allocate (an .npz's arrays together, a CSV table estimated from rows x columns before parsing, a one-hot table, stacked images as float32)",
    "records": "records (rows) in one input: CSV lines, an .npz's first axis, image files, a data set",
    "features": "values per record: CSV columns, features after one-hot encoding, a model folder's input shape",
    "classes": "distinct labels or output columns; integer labels stay class indices only below this",
    "models": "shadow or reference models one audit trains (--shadow-models, a grid's reference_models, many-targets --models)",
    "json_bytes": "one JSON or TOML document (model.json, an experiment file)",
    "json_depth": "nesting depth of a JSON document",
    "response_bytes": "one answer of a served target (--target URL)",
    "image_pixels": "pixels of one decoded image, checked from its header (Pillow's bomb guard follows it)",
    "model_parameters": "parameters of a model folder's architecture, counted before any weight is allocated",
}

_CURRENT: contextvars.ContextVar[Limits] = contextvars.ContextVar("miaudit_limits", default=Limits())


def limits() -> Limits:
    """The limits in force in this context."""
    return _CURRENT.get()


@contextlib.contextmanager
def use_limits(**changes: int) -> Iterator[Limits]:
    """Raise (or lower) limits inside a ``with`` block: ``with use_limits(records=50_000_000): ...``."""
    unknown = sorted(set(changes) - set(Limits.names()))
    if unknown:
        raise ConfigError(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(Limits.names())}")
    for name, value in changes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"limit {name} must be a positive integer, got {value!r}")
    token = _CURRENT.set(dataclasses.replace(_CURRENT.get(), **changes))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_limit(text: str) -> tuple[str, int]:
    """``"records=50000000"`` or ``"array_bytes=4g"`` -> ``(name, value)``; ConfigError otherwise.

    Sizes take a k/m/g/t suffix (powers of 1024); counts may use ``_`` separators.
    """
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in Limits.names():
        raise ConfigError(f"--limit takes NAME=VALUE with NAME one of {', '.join(Limits.names())}, got {text!r}")
    raw = raw.strip().lower().replace("_", "")
    scale = 1
    if raw[-1:] in _SUFFIXES:
        scale, raw = _SUFFIXES[raw[-1]], raw[:-1]
    if not raw.isdigit() or int(raw) * scale < 1:
        raise ConfigError(f"--limit {name} needs a positive whole number (sizes may end in k, m, g), got {text!r}")
    return name, int(raw) * scale


def check_at_most(name: str, value: int, what: str) -> int:
    """``value`` if it is within limit ``name``; a one-line :class:`LimitError` otherwise.

    ``what`` says what was measured, e.g. ``"train.csv's expanded table (bytes)"``.
    """
    bound = getattr(limits(), name)
    if value > bound:
        raise LimitError(
            f"{what} is {format_limit(name, value)}, above miaudit's limit of {format_limit(name, bound)}; "
            f"if the input is what you meant, raise it with --limit {name}={_suggest(value)}"
        )
    return value


def format_limit(name: str, value: int) -> str:
    """``value`` of limit ``name`` for people: sizes in KiB/MiB/GiB, counts with separators."""
    if name.endswith("_bytes"):
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value >= size:
                return f"{value / size:.1f} {unit}".replace(".0 ", " ")
        return f"{value} bytes"
    return f"{value:,}"


def _suggest(value: int) -> str:
    """A round value at or above ``value`` to put in the error message."""
    for suffix, size in (("g", 1 << 30), ("m", 1 << 20)):
        if value >= size:
            return f"{-(-value // size)}{suffix}"
    return str(value)
