"""The study contract: a named experiment that varies one cause of leakage and measures attack power.

The survey's section 6 ("why do models leak") names overfitting (Yeom et al., CSF 2018), the model
type (Truex et al., IEEE TSC 2019) and the data (number of classes: Shokri et al., S&P 2017 and
Salem et al., NDSS 2019; within-class feature variance: Truex et al.). Each study here turns one
of those claims into an experiment a user can rerun on their own data: it writes a table
(``study.json`` + ``table.csv``) and a figure (``plot.png``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from miaudit.data.split import SplitSizes
from miaudit.registry import Registry

DEFAULT_ATTACKS: tuple[str, ...] = ("loss", "modified-entropy", "lira-offline")
"""Attacks every study runs by default: the strongest shadow-calibrated score attacks that run on
any model type (gray box: full outputs, architecture, recipe and same-distribution data)."""


@dataclass(frozen=True)
class StudyConfig:
    """What a study runs on. Unset fields take the data set's audit defaults."""

    dataset: str
    seeds: tuple[int, ...] = (0,)
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    threat_model: str = "gray-box"
    n_shadow_models: int = 4
    model: str | None = None
    model_options: dict[str, Any] | None = None
    epochs: int | None = None
    max_records: int | None = None  # a random subset of the data set (e.g. CIFAR-10 on a CPU)
    split: SplitSizes | None = None
    grid: dict[str, str] = field(default_factory=dict)  # study-specific settings, e.g. {"epochs": "5,10,20"}
    label_column: str | None = None
    data_dir: str | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    n_bootstrap: int = 0  # studies compare many settings; spread comes from seeds


@dataclass
class StudyResult:
    """A study's tables (``"table"`` is the main one; others are written as ``<name>.csv``),
    its findings (e.g. a correlation and whether the survey's claim holds), and its figure."""

    study: str
    claim: str
    description: str
    tables: dict[str, list[dict[str, Any]]]
    findings: dict[str, Any]
    context: dict[str, Any]  # data set, model, seeds, attacks: what every figure must state
    plot: Callable[[Any], None] | None = None  # draws on a matplotlib Figure


@dataclass(frozen=True)
class Study:
    """A registered study: ``run(config, progress)`` -> :class:`StudyResult`."""

    name: str
    claim: str  # the survey's claim the study checks, in one sentence
    run: Callable[[StudyConfig, bool], StudyResult]
    grid_help: str = ""  # the ``--grid`` keys it understands


STUDIES: Registry[Study] = Registry("study")
