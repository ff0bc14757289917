"""Checks for attack options, which may come from the command line (``--attack-option``)."""

from __future__ import annotations

import numbers

from miaudit.errors import ConfigError


def whole(attack: str, name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a one-line ConfigError naming the option."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{attack} option {name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def fraction(attack: str, name: str, value: object) -> float:
    """``value`` as a float strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < 1:
        raise ConfigError(f"{attack} option {name} must be a number in (0, 1), got {value!r}")
    return float(value)


def positive(attack: str, name: str, value: object) -> float:
    """``value`` as a finite float > 0, or a one-line ConfigError naming the option."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < float("inf"):
        raise ConfigError(f"{attack} option {name} must be a positive number, got {value!r}")
    return float(value)
