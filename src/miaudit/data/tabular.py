"""Tables as users have them: CSV files with categories, missing values and ID columns.

:func:`load_tabular_splits` reads a training file, a test file and optionally a pool file (the
own-model journey: ``miaudit audit --model-file rf.skops --train train.csv --test test.csv``),
and :func:`load_tabular` one file. Every encoder and imputer (scikit-learn's
``OneHotEncoder`` / ``SimpleImputer``) is fitted on the training file only and applied to the
others; a category the training file never showed becomes an all-zero one-hot row (counted in
the preprocessing record). Labels are encoded over the union of all files' label values with
:func:`miaudit.data.user.encode_labels`, so the classes are exactly those the single-file
loader gives for the files concatenated.

What is refused, each with a one-line error saying what to do: duplicate column names (found in
the raw header, before pandas renames them ``label.1``), unknown label / ignored columns, empty
files, files whose columns differ, non-numeric columns without ``categorical``, missing values
without ``impute``, a label with one class. A column that looks like an ID (a distinct integer
or string on every row) is kept but reported in ``warnings``.

Features come out as float32 in this order: the numeric columns in file order, then each
categorical column's one-hot columns (named ``column=category``). Standardization is not done
here: it belongs to the model (``TrainingRecipe.standardize``), fitted on its own training rows.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder

from miaudit.data.base import Dataset
from miaudit.data.labels import LABEL_COLUMN_NAMES, encode_labels
from miaudit.errors import ConfigError, DataError

IMPUTE_STRATEGIES = ("mean", "median", "most_frequent")
ID_MIN_ROWS = 10
"""A column is reported as a likely ID only in files of at least this many rows."""


@dataclass(frozen=True)
class TabularOptions:
    """How to turn CSV columns into features.

    ``label_column``: the label column's header name (or index); None looks for a column named
    label/labels/y/class/target. ``categorical``: ``"auto"`` one-hot encodes every non-numeric
    column, a tuple names the columns to one-hot encode (numeric or not), None refuses
    non-numeric columns. ``impute``: None refuses missing values; ``"mean"`` / ``"median"`` /
    ``"most_frequent"`` fill numeric columns with that training-file statistic (categorical
    columns always with their most frequent training value). ``ignore_columns`` are dropped.
    """

    label_column: str | int | None = None
    categorical: Literal["auto"] | tuple[str, ...] | None = None
    impute: str | None = None
    ignore_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.categorical, (list, tuple)):
            object.__setattr__(self, "categorical", tuple(str(c) for c in self.categorical))
        elif self.categorical not in (None, "auto"):
            raise ConfigError(f"categorical must be 'auto', a list of column names or None, got {self.categorical!r}")
        if self.impute is not None and self.impute not in IMPUTE_STRATEGIES:
            raise ConfigError(f"impute must be one of {', '.join(IMPUTE_STRATEGIES)} (or None), got {self.impute!r}")
        object.__setattr__(self, "ignore_columns", tuple(str(c) for c in self.ignore_columns))


@dataclass(frozen=True)
class TabularSplits:
    """Encoded train / test / optional pool arrays (x float32, y int64) and what was done to them.

    ``preprocessing`` is JSON-able (see :func:`load_tabular_splits`); ``warnings`` are
    one-line messages for the user (also in ``preprocessing["warnings"]``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_pool: np.ndarray | None
    y_pool: np.ndarray | None
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    preprocessing: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# ----------------------------------------------------------------------------- reading


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A CSV/TSV file with a header row as a DataFrame of strings (missing cells NaN).

    The file is read once; its header is checked for duplicate names before pandas sees it.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p} cannot be read as a text CSV file ({exc})") from None
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise DataError(f"{p} is empty; give a CSV file with a header row and data rows")
    header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{p}: column name(s) {', '.join(map(repr, dupes))} appear more than once in the header; rename them")
    if any(h == "" for h in header):
        raise DataError(f"{p}: column {header.index('') + 1} of the header has no name; name every column")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, skip_blank_lines=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{p} is not a well-formed CSV file ({str(exc).strip().splitlines()[0]}); fix the file") from None
    frame.columns = header
    if frame.empty:
        raise DataError(f"{p} has a header but no data rows")
    return frame.apply(lambda col: col.str.strip())


def _label_name(options: TabularOptions, columns: list[str], source: str) -> str:
    label = options.label_column
    if isinstance(label, int) and not isinstance(label, bool):
        if not -len(columns) <= label < len(columns):
            raise ConfigError(f"{source}: --label-column {label} is out of range for {len(columns)} columns")
        return columns[label]
    if label is None:
        lowered = [c.lower() for c in columns]
        for name in LABEL_COLUMN_NAMES:
            if name in lowered:
                return columns[lowered.index(name)]
        raise ConfigError(
            f"{source}: no column is named {'/'.join(LABEL_COLUMN_NAMES)}; say which holds the labels with "
            f"--label-column NAME (columns: {', '.join(columns)})"
        )
    if label not in columns:
        raise ConfigError(f"{source} has no column {label!r} for --label-column; its columns are {', '.join(columns)}")
    return str(label)


def _check_same_columns(frames: dict[str, pd.DataFrame], paths: dict[str, str]) -> None:
    ref = list(frames["train"].columns)
    for part, frame in frames.items():
        missing = [c for c in ref if c not in frame.columns]
        extra = [c for c in frame.columns if c not in ref]
        if missing or extra:
            said = "; ".join(
                s for s in (f"lacks {', '.join(missing)}" if missing else "", f"has extra {', '.join(extra)}" if extra else "") if s
            )
            raise DataError(f"{paths[part]} and {paths['train']} must have the same columns: {paths[part]} {said}")


def _numeric(col: pd.Series) -> pd.Series:
    return pd.to_numeric(col, errors="coerce")


def _looks_like_id(col: pd.Series) -> bool:
    """A distinct integer or non-numeric string on every row (never a column of real numbers)."""
    if len(col) < ID_MIN_ROWS or col.isna().any() or col.nunique() != len(col):
        return False
    values = _numeric(col)
    if values.isna().all():
        return True  # strings
    return bool(values.notna().all() and (values == values.round()).all())


# ----------------------------------------------------------------------------- the pipeline


def load_tabular_splits(
    train: str | os.PathLike[str],
    test: str | os.PathLike[str],
    pool: str | os.PathLike[str] | None = None,
    options: TabularOptions | None = None,
) -> TabularSplits:
    """Read, check and encode a training, a test and optionally a pool CSV file.

    ``preprocessing`` records: ``files`` and ``rows`` per part, ``fitted_on`` (the training
    file), ``label_column``, ``class_names``, ``dropped_columns`` (the ignored ones),
    ``numeric_columns``, ``one_hot`` ({column: {"categories": [...], "unknown": {part: rows}}}),
    ``imputation`` (None, or {"strategy", "statistics": {column: value}, "missing": {part:
    {column: rows}}}), ``feature_names`` and ``warnings``.
    """
    paths = {"train": str(train), "test": str(test)}
    if pool is not None:
        paths["pool"] = str(pool)
    for part, p in paths.items():
        if not Path(p).expanduser().is_file():
            raise DataError(f"{p} (the {part} file) does not exist; give the path of a CSV file")
    frames = {part: read_table(p) for part, p in paths.items()}
    encoded = _encode(frames, paths, options or TabularOptions())
    return TabularSplits(
        x_train=encoded["x"]["train"],
        y_train=encoded["y"]["train"],
        x_test=encoded["x"]["test"],
        y_test=encoded["y"]["test"],
        x_pool=encoded["x"].get("pool"),
        y_pool=encoded["y"].get("pool"),
        class_names=encoded["class_names"],
        feature_names=encoded["feature_names"],
        preprocessing=encoded["preprocessing"],
        warnings=list(encoded["preprocessing"]["warnings"]),
    )


def load_tabular(
    path: str | os.PathLike[str], options: TabularOptions | None = None, *, name: str | None = None
) -> tuple[Dataset, dict[str, Any]]:
    """One CSV file encoded like :func:`load_tabular_splits` (fitted on itself): (Dataset, preprocessing)."""
    p = Path(path).expanduser()
    paths = {"train": str(p)}
    encoded = _encode({"train": read_table(p)}, paths, options or TabularOptions())
    names = encoded["class_names"]
    dataset = Dataset(name or p.stem, encoded["x"]["train"], encoded["y"]["train"], len(names), class_names=names)
    return dataset, encoded["preprocessing"]


def _encode(frames: dict[str, pd.DataFrame], paths: dict[str, str], options: TabularOptions) -> dict[str, Any]:
    train_path = paths["train"]
    columns = list(frames["train"].columns)
    _check_same_columns(frames, paths)
    frames = {part: f[columns] for part, f in frames.items()}
    label = _label_name(options, columns, train_path)
    unknown = [c for c in options.ignore_columns if c not in columns]
    if unknown:
        raise ConfigError(f"--ignore-column {', '.join(unknown)}: no such column in {train_path}; its columns are {', '.join(columns)}")
    if label in options.ignore_columns:
        raise ConfigError(f"--ignore-column {label!r} is the label column; give another --label-column or drop it")
    features = [c for c in columns if c != label and c not in options.ignore_columns]
    if not features:
        raise DataError(f"{train_path}: no feature column is left besides the label {label!r}")

    y, class_names = _labels(frames, paths, label)
    train = frames["train"]
    non_numeric = [c for c in features if (_numeric(train[c]).isna() & train[c].notna()).any()]
    categorical = _categorical_columns(options, features, non_numeric, train_path)
    numeric = [c for c in features if c not in categorical]
    warnings = [
        f"{train_path}: column {c!r} holds a distinct value on every row, like an ID; if it is one, "
        f"pass --ignore-column {c} so that the model does not learn it"
        for c in features
        if _looks_like_id(train[c])
    ]
    num = {part: _numeric_block(f, numeric, paths[part]) for part, f in frames.items()}
    cat = {part: f[categorical].to_numpy(dtype=object) for part, f in frames.items()}
    missing = {
        part: {c: int(n) for c, n in zip(numeric + categorical, _missing_counts(num[part], cat[part]), strict=True) if n}
        for part in frames
    }
    imputation = _impute(num, cat, numeric, categorical, missing, options.impute, paths)
    one_hot, blocks = _one_hot(cat, categorical)
    x = {part: np.hstack([num[part], blocks[part]]).astype(np.float32) for part in frames}
    for part, arr in x.items():
        bad = ~np.isfinite(arr)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{paths[part]}: row {row + 2}, column {numeric[col]!r} is infinite; fix or drop it")
    feature_names = tuple(numeric) + tuple(f"{c}={v}" for c in categorical for v in one_hot[c]["categories"])
    for c, info in one_hot.items():
        info["unknown"] = {part: int(n) for part, n in _unknown_counts(cat, categorical.index(c), info["categories"]).items()}
    preprocessing = {
        "files": dict(paths),
        "rows": {part: len(f) for part, f in frames.items()},
        "fitted_on": train_path,
        "label_column": label,
        "class_names": list(class_names),
        "dropped_columns": list(options.ignore_columns),
        "numeric_columns": numeric,
        "one_hot": one_hot,
        "imputation": imputation,
        "feature_names": list(feature_names),
        "warnings": warnings,
    }
    return {"x": x, "y": y, "class_names": class_names, "feature_names": feature_names, "preprocessing": preprocessing}


def _labels(
    frames: dict[str, pd.DataFrame], paths: dict[str, str], label: str
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    for part, f in frames.items():
        empty = f[label].isna()
        if empty.any():
            raise DataError(
                f"{paths[part]}: {int(empty.sum())} row(s) have no label in column {label!r} (first at row "
                f"{int(np.argmax(empty.to_numpy())) + 2}); fill them in or drop those rows"
            )
    values = np.concatenate([f[label].to_numpy(dtype=str) for f in frames.values()])
    indices, class_names = encode_labels(values, source=", ".join(paths.values()))
    if len(np.unique(indices)) < 2:
        raise DataError(
            f"{', '.join(paths.values())}: every record has label {values[0]!r} in column {label!r}; an audit needs "
            "two classes or more (is --label-column the right column?)"
        )
    bounds = np.cumsum([0] + [len(f) for f in frames.values()])
    y = {part: indices[bounds[i] : bounds[i + 1]] for i, part in enumerate(frames)}
    return y, class_names


def _categorical_columns(
    options: TabularOptions, features: list[str], non_numeric: list[str], source: str
) -> list[str]:
    if options.categorical is None:
        if non_numeric:
            raise DataError(
                f"{source}: column(s) {', '.join(non_numeric)} are not numeric; one-hot encode them with "
                f"--categorical (all non-numeric columns) or --categorical {','.join(non_numeric)}, or drop them with --ignore-column"
            )
        return []
    if options.categorical == "auto":
        return non_numeric
    unknown = [c for c in options.categorical if c not in features]
    if unknown:
        raise ConfigError(f"--categorical {', '.join(unknown)}: no such feature column in {source}; its features are {', '.join(features)}")
    left = [c for c in non_numeric if c not in options.categorical]
    if left:
        raise DataError(f"{source}: column(s) {', '.join(left)} are not numeric; add them to --categorical or --ignore-column")
    return [c for c in features if c in options.categorical]


def _numeric_block(frame: pd.DataFrame, numeric: list[str], source: str) -> np.ndarray:
    out = np.empty((len(frame), len(numeric)), dtype=np.float64)
    for j, c in enumerate(numeric):
        values = _numeric(frame[c])
        bad = values.isna() & frame[c].notna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise DataError(
                f"{source}: row {row + 2}, column {c!r} holds {frame[c].iloc[row][:30]!r}, not a number like the "
                "training file's; fix it or encode the column with --categorical"
            )
        out[:, j] = values.to_numpy(dtype=np.float64)
    return out


def _missing_counts(num: np.ndarray, cat: np.ndarray) -> list[int]:
    return [int(n) for n in np.isnan(num).sum(axis=0)] + [int(n) for n in pd.isna(cat).sum(axis=0)]


def _impute(
    num: dict[str, np.ndarray],
    cat: dict[str, np.ndarray],
    numeric: list[str],
    categorical: list[str],
    missing: dict[str, dict[str, int]],
    strategy: str | None,
    paths: dict[str, str],
) -> dict[str, Any] | None:
    """Fill missing cells in place with training-file statistics; None when nothing was imputed."""
    if strategy is None:
        for part, counts in missing.items():
            if counts:
                c, n = next(iter(counts.items()))
                raise DataError(
                    f"{paths[part]}: column {c!r} has {n} row(s) with missing values; fill them in, or pass "
                    f"--impute {{{','.join(IMPUTE_STRATEGIES)}}} (fitted on the training file)"
                )
        return None
    empty = [c for c, n in missing["train"].items() if n == len(num["train"])]
    if empty:
        raise DataError(f"{paths['train']}: column(s) {', '.join(empty)} have no values at all; drop them with --ignore-column")
    statistics: dict[str, Any] = {}
    if numeric:
        imputer = SimpleImputer(strategy=strategy).fit(num["train"])
        for part in num:
            num[part] = imputer.transform(num[part])
        statistics.update({c: float(v) for c, v in zip(numeric, imputer.statistics_, strict=True)})
    if categorical:
        imputer = SimpleImputer(strategy="most_frequent", missing_values=np.nan).fit(_nan_objects(cat["train"]))
        for part in cat:
            cat[part] = imputer.transform(_nan_objects(cat[part]))
        statistics.update({c: str(v) for c, v in zip(categorical, imputer.statistics_, strict=True)})
    return {
        "strategy": strategy,
        "categorical_strategy": "most_frequent" if categorical else None,
        "statistics": statistics,
        "missing": missing,
    }


def _nan_objects(block: np.ndarray) -> np.ndarray:
    """Object array with every missing cell as float NaN (what SimpleImputer looks for)."""
    out = block.astype(object)
    out[pd.isna(out)] = np.nan
    return out


def _one_hot(
    cat: dict[str, np.ndarray], categorical: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    if not categorical:
        return {}, {part: np.empty((len(block), 0)) for part, block in cat.items()}
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
    encoder.fit(cat["train"].astype(str))
    blocks = {part: encoder.transform(block.astype(str)) for part, block in cat.items()}
    info = {c: {"categories": [str(v) for v in cats]} for c, cats in zip(categorical, encoder.categories_, strict=True)}
    return info, blocks


def _unknown_counts(cat: dict[str, np.ndarray], j: int, categories: Sequence[str]) -> dict[str, int]:
    known = set(categories)
    return {part: int(sum(str(v) not in known for v in block[:, j])) for part, block in cat.items() if part != "train"}
