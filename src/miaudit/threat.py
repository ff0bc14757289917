"""Threat models: what the attacker knows and what it may see of the target.

Follows the survey's classification (Computer Science 2023, section 3, Table 1), itself after
Shokri et al. (S&P 2017), Salem et al. (NDSS 2019) and Nasr et al. (S&P 2019):

- output knowledge: label only < top-k probabilities < full probability vector < white box
  (losses, gradients, activations, parameters);
- model knowledge: the architecture (gray box) and the parameters (white box);
- training knowledge: the training procedure and hyper-parameters (the "recipe");
- data knowledge: none, same-distribution data (the attacker's pool), part of the training set.

Attacks declare a :class:`Requirements`; :func:`check` compares it with a :class:`ThreatModel`
and returns the reason a mismatch is refused. Nothing is ever silently granted.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, replace
from enum import IntEnum

from miaudit.errors import ConfigError
from miaudit.registry import Registry


class OutputAccess(IntEnum):
    """What one query to the target returns, ordered from least to most revealing."""

    LABEL = 0
    TOP_K = 1
    PROBABILITIES = 2
    WHITE_BOX = 3


class DataKnowledge(IntEnum):
    """What data the attacker holds, ordered from least to most."""

    NONE = 0
    SAME_DISTRIBUTION = 1
    PARTIAL_TRAINING_SET = 2


@dataclass(frozen=True)
class ThreatModel:
    """The attacker's knowledge, one field per kind in the survey's Table 1."""

    name: str
    output: OutputAccess
    top_k: int | None = None  # only with output=TOP_K
    knows_architecture: bool = False
    knows_parameters: bool = False
    knows_training_recipe: bool = False
    data: DataKnowledge = DataKnowledge.SAME_DISTRIBUTION
    query_budget: int | None = None  # queries (records) per attack; each attack gets a fresh count
    price_per_query: float | None = None  # what one query (one record) costs the attacker

    def __post_init__(self) -> None:
        if (self.output == OutputAccess.TOP_K) != (self.top_k is not None):
            raise ConfigError("a threat model gives top_k exactly when its output access is top-k")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k}")
        if self.knows_parameters and not self.knows_architecture:
            raise ConfigError("knowing the parameters implies knowing the architecture")
        if self.output == OutputAccess.WHITE_BOX and not self.knows_parameters:
            raise ConfigError("white-box output access needs knowledge of the parameters")
        if self.query_budget is not None and self.query_budget < 0:
            raise ConfigError(f"query budget must be >= 0, got {self.query_budget}")
        if self.price_per_query is not None and not (math.isfinite(self.price_per_query) and self.price_per_query >= 0):
            raise ConfigError(f"price per query must be a finite number >= 0, got {self.price_per_query}")


@dataclass(frozen=True)
class Requirements:
    """What an attack needs from the threat model to run."""

    output: OutputAccess
    min_top_k: int | None = None  # with output=TOP_K: at least this many classes
    architecture: bool = False
    parameters: bool = False
    training_recipe: bool = False
    data: DataKnowledge = DataKnowledge.NONE
    shadow_models: bool = False  # trains models of its own (needs architecture + recipe or a stand-in)

    def describe(self) -> dict[str, str]:
        out = self.output.name.lower().replace("_", "-")
        if self.output == OutputAccess.TOP_K and self.min_top_k:
            out = f"top-{self.min_top_k}"
        model = "parameters" if self.parameters else ("architecture" if self.architecture else "none")
        return {
            "output": out,
            "model": model,
            "training": "recipe" if self.training_recipe else "none",
            "data": self.data.name.lower().replace("_", "-"),
        }


_SHORT_OUTPUT = {OutputAccess.LABEL: "label", OutputAccess.TOP_K: "top-k", OutputAccess.PROBABILITIES: "full", OutputAccess.WHITE_BOX: "white-box"}
_SHORT_DATA = {DataKnowledge.NONE: "-", DataKnowledge.SAME_DISTRIBUTION: "pool", DataKnowledge.PARTIAL_TRAINING_SET: "part-train"}


def short_description(req: Requirements) -> str:
    """Compact ``output/model/training/data`` form for tables, e.g. ``full/arch/recipe/pool``."""
    output = f"top-{req.min_top_k}" if req.output == OutputAccess.TOP_K and req.min_top_k else _SHORT_OUTPUT[req.output]
    model = "params" if req.parameters else ("arch" if req.architecture else "-")
    return f"{output}/{model}/{'recipe' if req.training_recipe else '-'}/{_SHORT_DATA[req.data]}"


def check(req: Requirements, threat: ThreatModel) -> str | None:
    """None if ``threat`` permits an attack with ``req``, else a one-line reason."""
    if threat.output < req.output:
        return f"needs {req.output.name.lower()} output, the threat model gives {threat.output.name.lower()}"
    if (
        req.output == OutputAccess.TOP_K
        and threat.output == OutputAccess.TOP_K
        and req.min_top_k is not None
        and (threat.top_k or 0) < req.min_top_k
    ):
        return f"needs the top-{req.min_top_k} probabilities, the threat model gives top-{threat.top_k}"
    if req.architecture and not threat.knows_architecture:
        return "needs the target's architecture"
    if req.parameters and not threat.knows_parameters:
        return "needs the target's parameters"
    if req.training_recipe and not threat.knows_training_recipe:
        return "needs the target's training recipe"
    if threat.data < req.data:
        return f"needs {req.data.name.lower().replace('_', ' ')} data, the threat model gives {threat.data.name.lower().replace('_', ' ')}"
    return None


THREAT_MODELS: Registry[ThreatModel] = Registry("threat model")
# Presets after the survey's Table 1. Black box: outputs only, plus same-distribution data.
# Gray box: also the architecture and the training recipe. White box: also the parameters.
for _preset in (
    ThreatModel("black-box", OutputAccess.PROBABILITIES),
    ThreatModel("gray-box", OutputAccess.PROBABILITIES, knows_architecture=True, knows_training_recipe=True),
    ThreatModel(
        "white-box",
        OutputAccess.WHITE_BOX,
        knows_architecture=True,
        knows_parameters=True,
        knows_training_recipe=True,
    ),
    ThreatModel("label-only", OutputAccess.LABEL),
    # Nasr et al.'s supervised white box: also part of the target's training set (the audit gives
    # the attacker half of the members and evaluates the rest).
    ThreatModel(
        "white-box-partial",
        OutputAccess.WHITE_BOX,
        knows_architecture=True,
        knows_parameters=True,
        knows_training_recipe=True,
        data=DataKnowledge.PARTIAL_TRAINING_SET,
    ),
):
    THREAT_MODELS.add(_preset.name, _preset)


_TOPK_RE = re.compile(r"top-?(\d+)")


def parse_output(text: str) -> tuple[OutputAccess, int | None]:
    """``label``, ``topK`` (also ``top-K``, e.g. ``top3``) or ``full`` -> (output access, top_k)."""
    t = str(text).strip().lower()
    if t == "label":
        return OutputAccess.LABEL, None
    if t in ("full", "probabilities"):
        return OutputAccess.PROBABILITIES, None
    match = _TOPK_RE.fullmatch(t)
    if match:
        k = int(match.group(1))
        if k < 1:
            raise ConfigError(f"output {text!r}: top-k needs k >= 1 (e.g. top3)")
        return OutputAccess.TOP_K, k
    raise ConfigError(f"unknown output {text!r}; expected label, topK (e.g. top3) or full")


def _check_narrows(base: ThreatModel, access: OutputAccess, k: int | None, text: str) -> None:
    """``output`` may only narrow what a query returns: a preset is a statement of what the
    attacker can see, and ``--output full`` on ``label-only`` would silently audit another one."""
    wider = access > base.output or (
        access == base.output == OutputAccess.TOP_K and k is not None and base.top_k is not None and k > base.top_k
    )
    if wider:
        given = "label" if base.output == OutputAccess.LABEL else (f"top{base.top_k}" if base.top_k else base.output.name.lower().replace("_", "-"))
        raise ConfigError(
            f"--output {text} would widen threat model {base.name!r}, whose queries return {given}; --output only narrows: "
            "choose a preset that gives that output (e.g. --threat-model black-box) and narrow it"
        )


def derive(
    preset: str | ThreatModel,
    *,
    output: str | None = None,
    query_budget: int | None = None,
    price_per_query: float | None = None,
) -> ThreatModel:
    """A threat model from a preset (a name in :data:`THREAT_MODELS` or a :class:`ThreatModel`) with overrides.

    ``output`` narrows what one query returns (``label``, ``topK`` such as ``top3``, or ``full``;
    asking for more than the preset gives is a ConfigError), keeping the preset's knowledge of the model, training recipe and data; ``query_budget`` caps
    the queries (records) *each attack* may make; ``price_per_query`` prices each query. The name
    records the overrides, e.g. ``gray-box+top3+budget=1000``. Without overrides the preset itself
    is returned.
    """
    base = THREAT_MODELS.get(preset) if isinstance(preset, str) else preset
    changes: dict[str, object] = {}
    suffix: list[str] = []
    if output is not None:
        access, k = parse_output(output)
        _check_narrows(base, access, k, output)
        changes.update(output=access, top_k=k)
        suffix.append("label" if access == OutputAccess.LABEL else ("full" if k is None else f"top{k}"))
    if query_budget is not None:
        if isinstance(query_budget, bool) or not isinstance(query_budget, numbers.Integral) or query_budget < 0:
            raise ConfigError(f"query budget must be a whole number >= 0, got {query_budget!r}")
        query_budget = int(query_budget)
        changes["query_budget"] = query_budget
        suffix.append(f"budget={query_budget}")
    if price_per_query is not None:
        try:
            price = float(price_per_query)
        except (TypeError, ValueError):
            raise ConfigError(f"price per query must be a number, got {price_per_query!r}") from None
        if not (math.isfinite(price) and price >= 0):
            raise ConfigError(f"price per query must be a finite number >= 0, got {price_per_query!r}")
        changes["price_per_query"] = price
        suffix.append(f"price={price:g}")
    if not changes:
        return base
    return replace(base, name="+".join([base.name, *suffix]), **changes)
