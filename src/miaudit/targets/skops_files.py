"""scikit-learn estimators in skops files (``skops.io``), read under miaudit's own type policy.

skops rebuilds an object from a JSON schema instead of unpickling it, but it will build any
type the caller trusts. miaudit never passes ``trusted=True``: it lists every type a file names
(every node of the schema, plus what ``skops.io.get_untrusted_types`` reports, which includes
names hidden in strings such as a random generator's bit generator) and loads the file only if
each one is trusted here:

- scikit-learn classes whose module lies under one of :data:`SKLEARN_TRUSTED_MODULES` (trees,
  forests, boosting, linear models, SVMs, k-NN, MLPs, naive Bayes, pipelines, column
  transformers, scalers, encoders, imputers, ...), except :data:`SKLEARN_REFUSED_CLASSES`
  (classes built to carry a user's callable, e.g. ``FunctionTransformer``);
- numpy arrays, dtypes, scalar types, ``RandomState`` / ``Generator`` and numpy's bit generators;
- plain Python data: dict, list, tuple, set, str, int, float, bool, None, slice, bytes.

Everything else is refused with its name, in particular every callable (functions, methods,
``functools.partial``, ``operator`` getters: the ``FunctionNode`` family), any other package's
types and classes defined by the user. ``trusted_types`` (``--trusted-type``) adds exact names.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.bounded_io import parse_json, regular_file
from miaudit.errors import ConfigError, DataError, MiauditError
from miaudit.limits import check_at_most

SKLEARN_TRUSTED_MODULES: tuple[str, ...] = (
    "sklearn.tree",
    "sklearn.ensemble",  # forests, extra-trees, gradient boosting, HistGradientBoosting (predictor, binning)
    "sklearn._loss",  # the loss objects gradient boosting keeps
    "sklearn.linear_model",
    "sklearn.svm",
    "sklearn.neighbors",
    "sklearn.neural_network",  # MLP and its optimizers
    "sklearn.naive_bayes",
    "sklearn.discriminant_analysis",
    "sklearn.dummy",
    "sklearn.calibration",
    "sklearn.isotonic",
    "sklearn.multiclass",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.preprocessing",
    "sklearn.impute",
    "sklearn.feature_selection",
    "sklearn.decomposition",
    "sklearn.kernel_approximation",
)
"""scikit-learn modules (and their submodules) whose classes are trusted, reviewed one by one."""

SKLEARN_REFUSED_CLASSES: frozenset[str] = frozenset(
    {
        "FunctionTransformer",  # func / inverse_func: any callable
        "TransformedTargetRegressor",  # func / inverse_func
        "make_column_selector",  # a callable column selector
    }
)
"""Classes refused even under a trusted module: they exist to carry a callable."""

_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "complex", "bool", "NoneType", "slice", "bytes", "bytearray"}
)
_NUMPY = frozenset({"numpy.ndarray", "numpy.dtype", "numpy.ma.core.MaskedArray", "numpy.random.mtrand.RandomState",
                    "numpy.random._generator.Generator", "numpy.random.PCG64", "numpy.random.PCG64DXSM",
                    "numpy.random.MT19937", "numpy.random.Philox", "numpy.random.SFC64"})  # fmt: skip
_NUMPY_SCALARS = frozenset(f"numpy.{t.__name__}" for t in set(np.sctypeDict.values()))
_CALLABLE_LOADERS = frozenset({"FunctionNode", "MethodNode", "PartialNode", "OperatorFuncNode"})
_DATA_LOADERS = frozenset(
    {
        "DictNode", "DefaultDictNode", "ListNode", "SetNode", "TupleNode", "BytesNode", "BytearrayNode", "SliceNode",
        "TypeNode", "ObjectNode", "JsonNode", "NdArrayNode", "MaskedArrayNode", "RandomStateNode",
        "RandomGeneratorNode", "DTypeNode", "ReduceNode", "TreeNode", "LossNode", "_DictWithDeprecatedKeysNode",
    }
)  # fmt: skip


def is_trusted_type(name: str) -> bool:
    """True when miaudit loads type ``name`` ("module.Class") from a skops file without being told to."""
    if name in _NUMPY or name in _NUMPY_SCALARS:
        return True
    module, _, cls = name.rpartition(".")
    if module == "builtins":
        return cls in _BUILTINS
    if not module.startswith("sklearn.") or cls in SKLEARN_REFUSED_CLASSES:
        return False
    return any(module == m or module.startswith(m + ".") for m in SKLEARN_TRUSTED_MODULES)


def _nodes(obj: Any) -> Iterator[dict[str, Any]]:
    """Every dict of the schema that describes a node (it names a module and a class)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item or "__module__" in item or "__class__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def schema_types(path: Path) -> list[tuple[str, bool]]:
    """``(name, callable)`` for every node of a skops file's schema (sorted, each once)."""
    with zipfile.ZipFile(path) as z:
        schema = parse_json(z.read("schema.json"), f"{path.name}'s schema.json")
    found: set[tuple[str, bool]] = set()
    for node in _nodes(schema):
        loader = node.get("__loader__")
        if loader == "CachedNode":  # a reference to a node seen (and checked) elsewhere in the schema
            continue
        module, cls = node.get("__module__"), node.get("__class__")
        if not isinstance(module, str) or not isinstance(cls, str) or not isinstance(loader, str):
            raise ValueError("a schema node without module, class or loader")
        name = f"{module}.{cls}"
        if loader == "MethodNode":
            name += f".{node.get('content', {}).get('func')}"
        found.add((name, loader not in _DATA_LOADERS))  # a callable, or a loader this policy does not know
    return sorted(found)


def refused_types(path: Path, trusted_types: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """``(refused, skops_untrusted)``: the names in the file that miaudit refuses (empty = it
    loads), and skops' own list of untrusted names, to pass to ``skops.io.load(trusted=...)``."""
    import skops.io as sio

    extra = {str(t) for t in trusted_types}
    reported = [str(t) for t in sio.get_untrusted_types(file=path)]
    names = dict(schema_types(path))
    for name in reported:  # names skops found outside the nodes (e.g. a bit generator's class name)
        names.setdefault(name, False)
    refused = sorted(n for n, is_callable in names.items() if n not in extra and (is_callable or not is_trusted_type(n)))
    return refused, reported


def read_skops(path: str | Path, *, trusted_types: Iterable[str] = ()) -> Any:
    """The object in skops file ``path`` if every type it names is trusted (see the module doc);
    :class:`DataError` naming the refused types otherwise, or when the file is not skops."""
    try:
        import skops.io as sio
    except ImportError:
        raise ConfigError("reading .skops files needs skops: pip install 'miaudit[sklearn-files]'") from None
    p = regular_file(path, "model file")
    _check_expanded_size(p)
    trusted = [str(t) for t in trusted_types]
    try:
        refused, reported = refused_types(p, trusted)
    except MiauditError:  # a bound passed (schema too deep): its own message
        raise
    except Exception as exc:  # zip, JSON or schema errors from a corrupt file  # noqa: BLE001
        raise DataError(f"{p.name} is not a readable skops file ({type(exc).__name__}); save it again with skops.io.dump") from None
    if refused:
        flags = " ".join(f"--trusted-type {n}" for n in refused)
        raise DataError(f"{p.name} holds types miaudit will not load ({', '.join(refused)}); pass {flags} if you trust this file")
    try:
        return sio.load(p, trusted=reported)
    except Exception as exc:  # noqa: BLE001  # skops' own refusals and schema errors
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot load skops file {p.name} ({type(exc).__name__}: {first}); save it again with skops.io.dump") from None


def _check_expanded_size(p: Path) -> None:
    """A skops file is a zip: its members' stated sizes, and its schema's, within the limits
    before skops inflates them (a small file can expand to gigabytes)."""
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError):
        return  # not a zip: refused below as "not a readable skops file"
    check_at_most("array_bytes", sum(i.file_size for i in infos), f"{p.name}'s contents, expanded")
    schema = next((i for i in infos if i.filename == "schema.json"), None)
    if schema is not None:
        check_at_most("json_bytes", schema.file_size, f"{p.name}'s schema.json")


def write_skops(obj: Any, path: Path) -> None:
    """``skops.io.dump(obj, path)`` (no pickle); :class:`ConfigError` when skops is missing."""
    try:
        import skops.io as sio
    except ImportError:
        raise ConfigError("saving scikit-learn models needs skops: pip install 'miaudit[sklearn-files]'") from None
    sio.dump(obj, path)
