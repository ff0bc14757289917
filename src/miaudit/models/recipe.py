"""How a torch model is trained: optimizer, learning rate, epochs, batch size, schedule."""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from miaudit.errors import ConfigError
from miaudit.models.augmentation import AUGMENTS
from miaudit.models.optim import OPTIMIZERS
from miaudit.models.schedules import SCHEDULE_PARAMS, SCHEDULES


@dataclass(frozen=True)
class TrainingRecipe:
    """Training hyper-parameters; frozen, validated on construction, JSON-able via :meth:`to_dict`.

    The defaults are the Location30 / Purchase100 setting of Shokri et al. (S&P 2017) as commonly
    reproduced: Adam, lr 1e-3, 30 epochs, batches of 64. ``momentum`` only affects SGD;
    ``weight_decay`` is an L2 term added to the gradient (``torch.optim`` semantics); with
    ``optimizer="sgd", momentum=0`` the update is plain SGD, ``p -= lr * grad``.

    ``schedule="step"`` multiplies the rate by ``gamma`` at each epoch of ``milestones``
    (strictly increasing, >= 1; e.g. ``milestones=(150,), gamma=0.1``, see
    ``miaudit.models.schedules.step``). ``milestones`` and ``gamma`` belong to the step schedule
    only: another schedule refuses them unless they keep their defaults, and :meth:`to_dict`
    writes them only for the step schedule, so recipes (and cache keys) that never use them are
    what they were before these fields existed.

    ``standardize=True`` makes every model trained with this recipe standardize its inputs with
    the per-feature mean and standard deviation of its own training records (see
    ``miaudit.models.standardize``): the target with its members', each shadow or reference
    model with its own subset's. Like ``milestones``, it appears in :meth:`to_dict` (and cache
    keys) only when True, so recipes without it keep their keys.

    ``augment="flip-crop"`` (image models only) trains on randomly cropped (``crop_padding``
    zeros each side) and mirrored images, drawn per model, epoch and visit from the model's seed
    (``miaudit.models.augmentation``); ``"none"`` (default) leaves :meth:`to_dict` as before.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 30
    batch_size: int = 64
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    standardize: bool = False
    augment: str = "none"
    crop_padding: int = 4

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS.names())}"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown learning-rate schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES.names())}"
            )
        _check_float("lr", self.lr, low=0.0, low_inclusive=False)
        _check_float("momentum", self.momentum, low=0.0, high=1.0)
        _check_float("weight_decay", self.weight_decay, low=0.0)
        _check_int("epochs", self.epochs)
        _check_int("batch_size", self.batch_size)
        object.__setattr__(self, "milestones", _check_milestones(self.milestones))
        _check_float("gamma", self.gamma, low=0.0, low_inclusive=False)
        used = SCHEDULE_PARAMS.get(self.schedule, ())
        for name in ("milestones", "gamma"):
            if name not in used and getattr(self, name) != _DEFAULTS[name]:
                raise ConfigError(
                    f"training option {name} applies to the step schedule only, not to schedule {self.schedule!r}"
                )
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise ConfigError(f"training option standardize must be true or false, got {self.standardize!r}")
        object.__setattr__(self, "standardize", bool(self.standardize))
        if self.augment not in AUGMENTS:
            raise ConfigError(f"unknown training augmentation {self.augment!r}; choose one of: {', '.join(AUGMENTS)}")
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, numbers.Integral) or self.crop_padding < 0:
            raise ConfigError(f"training option crop_padding must be a whole number >= 0, got {self.crop_padding!r}")
        if self.augment == "none" and self.crop_padding != _DEFAULTS["crop_padding"]:
            raise ConfigError("training option crop_padding applies to augment=flip-crop only")
        object.__setattr__(self, "crop_padding", int(self.crop_padding))
        if self.schedule == "step" and not self.milestones:
            raise ConfigError("the step schedule needs milestones (epochs at which the rate is multiplied by gamma)")
        # Normalise numpy scalars and ints given for floats (lr=1) so that equal recipes hash alike.
        for name in ("lr", "momentum", "weight_decay", "gamma"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("epochs", "batch_size"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def schedule_params(self) -> dict[str, Any]:
        """The keyword parameters of this recipe's schedule (``{}`` for constant and cosine)."""
        return {name: getattr(self, name) for name in SCHEDULE_PARAMS.get(self.schedule, ())}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields; ``milestones``/``gamma`` only when the schedule uses them,
        ``standardize`` only when True, ``augment``/``crop_padding`` only with augmentation."""
        data = asdict(self)
        if not self.standardize:
            del data["standardize"]
        if self.augment == "none":
            del data["augment"], data["crop_padding"]
        used = SCHEDULE_PARAMS.get(self.schedule, ())
        for name in ("milestones", "gamma"):
            if name not in used:
                del data[name]
        if "milestones" in data:
            data["milestones"] = list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingRecipe:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(cls.__dataclass_fields__)}")
        return cls(**data)


_DEFAULTS = {f.name: f.default for f in fields(TrainingRecipe)}


def _check_milestones(value: Any) -> tuple[int, ...]:
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value
    )
    if not ok or any(b <= a for a, b in itertools.pairwise(value)):
        raise ConfigError(f"training option milestones must be strictly increasing epochs >= 1, got {value!r}")
    return tuple(int(v) for v in value)


def _check_float(
    name: str, value: Any, *, low: float, high: float | None = None, low_inclusive: bool = True
) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"training option {name} must be a finite number, got {value!r}")
    if value < low or (value == low and not low_inclusive):
        bound = f"{'>=' if low_inclusive else '>'} {low:g}"
        raise ConfigError(f"training option {name} must be {bound}, got {value!r}")
    if high is not None and value >= high:
        raise ConfigError(f"training option {name} must be < {high:g}, got {value!r}")


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"training option {name} must be a positive integer, got {value!r}")
