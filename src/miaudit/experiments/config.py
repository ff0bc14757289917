"""Experiment files: a TOML grid of audits, checked key by key before anything trains.

An experiment file (``miaudit run EXPERIMENT.toml``; examples in ``examples/``) has three tables:

* ``[experiment]``: ``name``, ``description`` (text only);
* ``[grid]``: the axes, each a list; every combination is one audit (a *cell*):
  ``datasets``, ``splits`` (tables of ``target_in`` / ``target_out`` / ``attacker_pool`` /
  ``population``), ``models`` (tables of ``name``, ``options``, ``recipe``), ``defenses``,
  ``threat_models`` (names, or tables of ``name`` / ``output`` / ``query_budget`` /
  ``price_per_query``), ``seeds``, ``reference_models`` (shadow / reference models per attack);
  ``attacks`` is not an axis: each cell runs the listed attacks its threat model permits
  (default: every permitted one) against one target;
* ``[run]``: settings that do not change a result: ``data_dir``, ``cache_dir``, ``executor``,
  ``ray_address``, ``workers``, ``reports``; and ``bootstrap`` (resamples for the AUC interval).

Errors name the key's path (``grid.models[1].recipe.epochs: expected an integer, got "ten"``).
:func:`resolve_experiment` then loads each data set and checks every cell (names against the
registries, model options, recipes, split sizes against the data set's size) so that a bad cell
fails before the first model trains.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miaudit.bounded_io import read_bytes
from miaudit.errors import ConfigError, MiauditError
from miaudit.io_utils import stable_hash
from miaudit.limits import check_at_most
from miaudit.seeds import check_user_seed

NO_DEFENSE = "none"


# --- typed readers: each takes (value, path) and returns the value or raises with the path ---


def _fail(path: str, expected: str, value: Any) -> ConfigError:
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return ConfigError(f"{path}: expected {expected}, got {shown}")


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, "a non-empty string", value)
    return value


def _int(low: int) -> Callable[[Any, str], int]:
    def read(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, "an integer", value)
        if value < low:
            raise ConfigError(f"{path}: must be >= {low}, got {value}")
        return value

    return read


def _seed(value: Any, path: str) -> int:
    return check_user_seed(_int(0)(value, path), path)


def _models(value: Any, path: str) -> int:
    """A count of shadow / reference models: >= 1 and within the ``models`` limit."""
    return check_at_most("models", _int(1)(value, path), path)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (float("inf"), -float("inf")):
        raise _fail(path, "a finite number", value)
    return float(value)


def _size(value: Any, path: str) -> int | float:
    """A split size: a count (int >= 0) or a fraction in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, "a count or a fraction", value)
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        raise ConfigError(f"{path}: a fraction must lie in [0, 1], got {value}")
    if isinstance(value, int) and value < 0:
        raise ConfigError(f"{path}: a count must be >= 0, got {value}")
    return value


def _table(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "a table", value)
    return value


def _list(item: Callable[[Any, str], Any], *, unique: bool = True) -> Callable[[Any, str], list[Any]]:
    def read(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _fail(path, "a list", value)
        if not value:
            raise ConfigError(f"{path}: the list is empty; give at least one value or leave the key out")
        out = [item(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if unique:
            keys = [stable_hash(v) for v in out]
            for i, k in enumerate(keys):
                if k in keys[:i]:
                    raise ConfigError(f"{path}[{i}]: repeats an earlier value; each grid value must be distinct")
        return out

    return read


def _fields(value: Any, path: str, schema: dict[str, Callable[[Any, str], Any]], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A table whose keys must all be in ``schema``; each value read by its reader."""
    table = _table(value, path)
    prefix = f"{path}." if path else ""
    for key in table:
        if key not in schema:
            raise ConfigError(f"{prefix}{key}: unknown key; known keys here: {', '.join(sorted(schema))}")
    for key in required:
        if key not in table:
            raise ConfigError(f"{prefix}{key}: required key is missing")
    return {key: schema[key](v, f"{prefix}{key}") for key, v in table.items()}


def _free_table(value: Any, path: str) -> dict[str, Any]:
    """Options passed on to a registry entry, which checks them itself (see resolve)."""
    return dict(_table(value, path))


_SPLIT = {"target_in": _size, "target_out": _size, "attacker_pool": _size, "population": _size}
_MODEL = {"name": _str, "options": _free_table, "recipe": _free_table}
_THREAT = {"name": _str, "output": _str, "query_budget": _int(1), "price_per_query": _number}


def _threat(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": _str(value, path)}
    return _fields(value, path, _THREAT, required=("name",))


_GRID = {
    "datasets": _list(_str),
    "splits": _list(lambda v, p: _fields(v, p, _SPLIT)),
    "models": _list(lambda v, p: _fields(v, p, _MODEL, required=("name",))),
    "defenses": _list(_str),
    "threat_models": _list(_threat),
    "attacks": _list(_str),
    "seeds": _list(_seed),
    "reference_models": _list(_models),
}
_RUN = {
    "data_dir": _str,
    "cache_dir": _str,
    "label_column": _str,
    "executor": _str,
    "ray_address": _str,
    "workers": _int(1),
    "bootstrap": _int(0),
    "reports": _list(_str),
}
_EXPERIMENT = {"name": _str, "description": _str}
_TOP = {
    "experiment": lambda v, p: _fields(v, p, _EXPERIMENT),
    "grid": lambda v, p: _fields(v, p, _GRID, required=("datasets",)),
    "run": lambda v, p: _fields(v, p, _RUN),
}


@dataclass(frozen=True)
class Experiment:
    """A checked experiment file: its tables with every key known and typed."""

    name: str
    grid: dict[str, Any]
    run: dict[str, Any]
    source: str = ""  # the file's text, kept in the results store

    @property
    def bootstrap(self) -> int:
        return int(self.run.get("bootstrap", 200))


def parse_experiment(text: str, *, origin: str = "experiment file") -> Experiment:
    """Parse and check TOML ``text``; :class:`ConfigError` names the first bad key's path."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from None
    top = _fields(raw, "", _TOP, required=("grid",))
    meta = top.get("experiment", {})
    return Experiment(name=meta.get("name", "experiment"), grid=top["grid"], run=top.get("run", {}), source=text)


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file."""
    p = Path(path)
    raw = read_bytes(p, "experiment file", limit="json_bytes")  # a FIFO or /dev/zero is refused, not read forever
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"experiment file {p} is not UTF-8 text") from None
    return parse_experiment(text, origin=f"experiment file {p}")


# --- resolving the grid into cells ---


@dataclass(frozen=True)
class Cell:
    """One audit of the grid, every setting spelled out (``settings``) and its id."""

    settings: dict[str, Any] = field(hash=False)
    cell_id: str


def defense_names() -> list[str]:
    """Defenses a grid may name: ``none``, plus the DEFENSES registry's entries once it exists."""
    try:
        from miaudit.defenses import DEFENSES  # type: ignore[import-not-found]
    except ImportError:
        return [NO_DEFENSE]
    return [NO_DEFENSE, *DEFENSES.names()]


def _check_name(name: str, known: list[str], path: str, kind: str) -> None:
    if name not in known:
        raise ConfigError(f"{path}: unknown {kind} {name!r}; choose one of: {', '.join(known)}")


def _at(path: str, exc: MiauditError) -> ConfigError:
    return ConfigError(f"{path}: {exc}")


def resolve_experiment(exp: Experiment, *, data_dir: str | None = None) -> list[Cell]:
    """Every cell of the grid, checked: names, model options, recipes and split sizes.

    Loads each data set once (to know its size and defaults); trains nothing.
    """
    from miaudit.attacks import ATTACKS
    from miaudit.data.split import SplitSizes
    from miaudit.experiments.audit import AuditConfig, load_audit_data
    from miaudit.experiments.defaults import defaults_for
    from miaudit.models import ARCHITECTURES, ArchConfig, TrainingRecipe, model_names
    from miaudit.threat import check, derive

    from miaudit.models.executors import EXECUTORS

    g, run = exp.grid, exp.run
    data_dir = data_dir or run.get("data_dir")
    _check_name(run.get("executor", "local"), EXECUTORS.names(), "run.executor", "executor")
    for i, name in enumerate(g.get("defenses", [NO_DEFENSE])):
        _check_name(name, defense_names(), f"grid.defenses[{i}]", "defense")
    threats = []
    for i, t in enumerate(g.get("threat_models", [{"name": "gray-box"}])):
        try:
            threats.append((t, derive(t["name"], output=t.get("output"), query_budget=t.get("query_budget"), price_per_query=t.get("price_per_query"))))
        except MiauditError as exc:
            raise _at(f"grid.threat_models[{i}]", exc) from None
    attacks = g.get("attacks")
    for i, name in enumerate(attacks or []):
        _check_name(name, ATTACKS.names(), f"grid.attacks[{i}]", "attack")
    if attacks is not None:
        for i, name in enumerate(attacks):
            if all(check(ATTACKS.get(name).requirements, th) is not None for _, th in threats):
                raise ConfigError(f"grid.attacks[{i}]: attack {name!r} is permitted by none of the grid's threat models")

    datasets = {}
    for i, name in enumerate(g["datasets"]):
        try:
            datasets[name] = load_audit_data(AuditConfig(dataset=name, data_dir=data_dir, label_column=run.get("label_column")))
        except MiauditError as exc:
            raise _at(f"grid.datasets[{i}]", exc) from None

    cells: list[Cell] = []
    split_axis = g.get("splits", [None])
    model_axis = g.get("models", [None])
    for d_name, split, model, defense, (threat_raw, threat), seed, refs in itertools.product(
        g["datasets"], split_axis, model_axis, g.get("defenses", [NO_DEFENSE]), threats,
        g.get("seeds", [0]), g.get("reference_models", [4]),
    ):  # fmt: skip
        dataset = datasets[d_name]
        d_path = f"grid.datasets[{g['datasets'].index(d_name)}]"
        defaults = defaults_for(dataset.name)
        # Split sizes against this data set.
        s_path = f"grid.splits[{split_axis.index(split)}]" if split is not None else d_path
        sizes = SplitSizes(**split) if split is not None else defaults.split
        try:
            counts = sizes.resolve(len(dataset))
        except MiauditError as exc:
            raise ConfigError(f"{s_path}: with data set {d_name!r} ({len(dataset)} records): {exc}") from None
        # Model, options and recipe.
        m_path = f"grid.models[{model_axis.index(model)}]" if model is not None else d_path
        m_name = model["name"] if model is not None else defaults.model
        _check_name(m_name, model_names(), f"{m_path}.name", "model")
        default_options = defaults.model_options if m_name == defaults.model else {}
        options = dict(model["options"]) if model is not None and "options" in model else dict(default_options)
        recipe_overrides = model.get("recipe", {}) if model is not None else {}
        try:
            recipe = TrainingRecipe(**{**defaults.recipe, **recipe_overrides}).to_dict()
        except TypeError as exc:
            raise ConfigError(f"{m_path}.recipe: {_unknown_field(exc)}") from None
        except MiauditError as exc:
            raise _at(f"{m_path}.recipe", exc) from None
        if m_name in ARCHITECTURES:
            try:
                options = ArchConfig(m_name, options).resolved().to_dict()["options"]
            except MiauditError as exc:
                raise _at(f"{m_path}.options", exc) from None
        # Attacks this cell's threat model permits.
        chosen = attacks if attacks is not None else ATTACKS.names()
        permitted = [a for a in chosen if check(ATTACKS.get(a).requirements, threat) is None]
        skipped = {a: str(check(ATTACKS.get(a).requirements, threat)) for a in chosen if a not in permitted}
        needs_pool = any(ATTACKS.get(a).requirements.shadow_models for a in permitted)
        if needs_pool and counts["attacker_pool"] < 4:
            raise ConfigError(f"{s_path}: attacker_pool holds {counts['attacker_pool']} records; shadow models need at least 4")
        settings = {
            "dataset": d_name,
            "dataset_fingerprint": dataset.fingerprint,
            "split": {k: v for k, v in (split or {}).items()} or None,
            "split_counts": counts,
            "model": m_name,
            "model_options": options,
            "recipe": recipe,
            "defense": defense,
            "threat_model": threat_raw,
            "threat": threat.name,
            "attacks": permitted,
            "skipped": skipped,
            "seed": seed,
            "reference_models": refs,
            "bootstrap": exp.bootstrap,
        }
        cells.append(Cell(settings, _cell_id(settings)))
    return cells


def _unknown_field(exc: TypeError) -> str:
    text = str(exc)
    if "unexpected keyword argument" in text:
        key = text.split("unexpected keyword argument")[-1].strip(" '\"")
        return f"unknown recipe key {key!r}"
    return text


def _cell_id(settings: dict[str, Any]) -> str:
    """Readable and unique: the varying parts in words, then a hash of everything."""
    words = [settings["dataset"], settings["model"], settings["defense"], settings["threat"], f"seed{settings['seed']}", f"ref{settings['reference_models']}"]
    slug = "-".join("".join(c if c.isalnum() or c in "+._" else "_" for c in w) for w in words)
    return f"{slug[:80]}-{stable_hash(settings)[:10]}"
