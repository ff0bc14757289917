"""The defense contract: one trained, defended target from one :class:`TrainingTask`.

A defense is either a *training-time* defense (DP-SGD, adversarial regularization, DMP, weight
decay, dropout, early stopping: a way of training the model) or an *output-time* defense
(MemGuard, top-k, rounding, label only, output noise: a function between the model's
probability vector and what a query releases). Both kinds are built the same way,
``Defense.build(task) -> DefendedModel``, so that an adaptive attacker (Song and Mittal, USENIX
Security 2021) can build its shadow and reference models with the very same defense on its own data
(:mod:`miaudit.attacks.train_models`).

Defenses are named by spec strings, ``"name"`` or ``"name:param=value,param=value"`` (e.g.
``"dpsgd:epsilon=4"``, ``"memguard:budget=0.5"``); :func:`parse_defense` turns one into an
instance, refusing unknown names and parameters with a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from miaudit.errors import ConfigError
from miaudit.registry import Registry


@dataclass(frozen=True)
class TrainingTask:
    """What a defense needs to produce one released model.

    ``private_idx`` are the records the model must protect (its members); ``reference_idx``
    are records the defender also holds, disjoint from them and from every evaluated record
    (adversarial regularization's and MemGuard's non-member reference, DMP's transfer set), or
    None when the defender holds none. ``recipe`` is a :class:`miaudit.models.TrainingRecipe`.
    """

    x: np.ndarray
    y: np.ndarray
    private_idx: np.ndarray
    reference_idx: np.ndarray | None
    num_classes: int
    seed: int
    model: str
    options: dict[str, Any]
    recipe: Any
    cache: Any = None  # a ModelCache for undefended base models, or None
    data_fingerprint: str | None = None
    progress: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def reference(self, defense: str) -> np.ndarray:
        """The reference indices, or a one-line error naming the defense that needs them."""
        if self.reference_idx is None or len(self.reference_idx) == 0:
            raise ConfigError(
                f"defense {defense!r} needs reference data held by the defender (the split's population part); "
                "give the split a population"
            )
        overlap = np.intersect1d(self.reference_idx, self.private_idx)
        if len(overlap):
            raise ConfigError(f"defense {defense!r}: {len(overlap)} reference records are also private records")
        return self.reference_idx


@dataclass
class DefendedModel:
    """A released model (``predict_proba``; ``predict_logits`` only for training-time defenses)
    and what the defense reports about it (e.g. DP-SGD's achieved epsilon)."""

    model: Any
    info: dict[str, Any] = field(default_factory=dict)


class Defense(ABC):
    """Base class. Subclasses set ``name``, ``paper``, ``stage``, ``defaults`` and implement build."""

    name: ClassVar[str]
    paper: ClassVar[str]
    stage: ClassVar[str]  # "training" or "output"
    defaults: ClassVar[dict[str, Any]] = {}
    needs_reference: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(self.defaults) or "(none)"
            raise ConfigError(f"defense {self.name!r} has no parameter {', '.join(unknown)}; its parameters: {known}")
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.validate()

    def validate(self) -> None:
        """Check ``self.params``; raise ConfigError with what to change."""

    @abstractmethod
    def build(self, task: TrainingTask) -> DefendedModel:
        """Train (and, for output-time defenses, wrap) the released model."""

    def spec(self) -> str:
        """The spec string that rebuilds this defense."""
        changed = {k: v for k, v in self.params.items() if self.defaults.get(k) != v}
        if not changed:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in changed.items())

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec(), "stage": self.stage, "paper": self.paper, "params": dict(self.params)}

    # -- parameter checks shared by the defenses -----------------------------------------

    def _number(self, key: str, *, low: float | None = None, high: float | None = None, integer: bool = False,
                optional: bool = False) -> None:  # fmt: skip
        value = self.params[key]
        if value is None and optional:
            return
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if ok and integer:
            ok = float(value).is_integer()
        if ok and low is not None:
            ok = value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            kind = "an integer" if integer else "a number"
            bounds = (f" >= {low:g}" if low is not None else "") + (f" and <= {high:g}" if high is not None else "")
            raise ConfigError(f"defense {self.name!r}: {key} must be {kind}{bounds}, got {value!r}")
        self.params[key] = int(value) if integer else float(value)


DEFENSES: Registry[type[Defense]] = Registry("defense")


def _value(text: str) -> Any:
    """A parameter value from a spec: int, float, none, true/false, else the string."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_defense(spec: str) -> Defense:
    """``"name"`` or ``"name:key=value,key=value"`` -> a validated :class:`Defense`."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("a defense spec must be a name such as 'dpsgd' or 'memguard:budget=0.5'")
    name, _, rest = spec.strip().partition(":")
    cls = DEFENSES.get(name.strip())  # unknown names fail with the list of known ones
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"defense spec {spec!r}: write parameters as key=value, got {item!r}")
        params[key.strip()] = _value(value)
    return cls(**params)


def parse_defenses(text: str) -> list[Defense]:
    """Specs separated by ``,`` or ``;``: a ``key=value`` item belongs to the spec before it, so
    ``"none,dpsgd:epsilon=4,delta=1e-5,memguard"`` is three defenses."""
    specs: list[str] = []
    for token in (t.strip() for t in text.replace(";", ",").split(",")):
        if not token:
            continue
        if "=" in token and ":" not in token.split("=", 1)[0]:
            if not specs:
                raise ConfigError(f"defense list {text!r} starts with a parameter ({token!r}); name the defense first")
            specs[-1] += "," + token
        else:
            specs.append(token)
    if not specs:
        raise ConfigError("no defense given; e.g. --defenses none,dpsgd,memguard")
    return [parse_defense(s) for s in specs]
