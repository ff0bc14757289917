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

import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder

from miaudit.bounded_io import check_header_names, check_table_size, csv_first_row
from miaudit.data.base import Dataset
from miaudit.data.labels import LABEL_COLUMN_NAMES, encode_labels
from miaudit.errors import ConfigError, DataError
from miaudit.limits import check_at_most

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


_CHUNK_CELLS = 1 << 19
"""Cells pandas parses as strings at a time, before they are converted."""


def table_header(path: str | os.PathLike[str]) -> list[str]:
    """The header row of a CSV/TSV file, checked: no repeated and no empty column names."""
    p = Path(path).expanduser()
    header = csv_first_row(p, "CSV file", delimiter=_delimiter(p))
    if header is None:
        raise DataError(f"{p} is empty; give a CSV file with a header row and data rows")
    check_header_names(header, str(p))
    return header


def read_table(path: str | os.PathLike[str], text_columns: Collection[str] = ()) -> pd.DataFrame:
    """A CSV/TSV file with a header row as a DataFrame, every cell stripped, missing cells NaN.

    A column whose every cell is a number (or missing) comes back as float64; the others, and
    ``text_columns`` (the label, columns to one-hot encode), as strings in a ``category``
    column. Memory stays near 8 bytes a cell, where a DataFrame of Python strings takes about
    60: the header is checked before pandas sees the file (repeated names would be renamed
    ``label.1``), the table's size against the limits before anything is parsed, and the file
    is then parsed in chunks, each column converted as it comes (a second pass only when a
    column turns out to be text after chunks of numbers).
    """
    p = Path(path).expanduser()
    header = table_header(p)
    check_table_size(p, len(header), np.dtype(np.float64).itemsize, "CSV file")
    numeric = [c not in set(text_columns) for c in header]
    parts, flipped = _parse(p, header, numeric)
    if flipped:  # a column turned out to be text after chunks of numbers: read its strings again
        parts, _ = _parse(p, header, numeric)
    if sum(len(c) for c in parts[0]) == 0:
        raise DataError(f"{p} has a header but no data rows")
    columns: dict[str, Any] = {}
    for j, name in enumerate(header):
        part, parts[j] = parts[j], []  # each column's chunks are freed once joined
        columns[name] = np.concatenate(part) if numeric[j] else union_categoricals(part)
    return pd.DataFrame(columns, copy=False)


def _parse(p: Path, header: list[str], numeric: list[bool]) -> tuple[list[list[Any]], bool]:
    """Each column's chunks: float64 while ``numeric[j]`` holds, else ``Categorical`` strings.

    ``numeric[j]`` is cleared when column ``j`` holds a cell that is not a number; the second
    value is True when that happened after earlier chunks were already converted to numbers.
    """
    parts: list[list[Any]] = [[] for _ in header]
    flipped = False
    for chunk in _chunks(p, header):
        for j, part in enumerate(parts):
            col = chunk.iloc[:, j]
            if numeric[j]:
                values = pd.to_numeric(col, errors="coerce")
                if (values.isna() & col.notna()).any():
                    numeric[j] = False
                    flipped = flipped or bool(part)
                else:
                    part.append(values.to_numpy(np.float64))
                    continue
            part.append(pd.Categorical(col))
    return parts, flipped


def _delimiter(p: Path) -> str:
    return "\t" if p.suffix.lower() == ".tsv" else ","


def _chunks(p: Path, header: list[str]) -> Iterator[pd.DataFrame]:
    """The file's rows in chunks of strings (stripped; missing cells NaN), columns named ``header``."""
    try:
        with pd.read_csv(
            p, sep=_delimiter(p), dtype=str, skip_blank_lines=True, encoding="utf-8-sig",
            chunksize=max(1, _CHUNK_CELLS // len(header)),
        ) as reader:  # fmt: skip
            for chunk in reader:
                if chunk.shape[1] != len(header):
                    raise DataError(f"{p} is not a well-formed CSV file (rows of {chunk.shape[1]} fields under a header of {len(header)}); fix the file")
                chunk.columns = header
                yield chunk.apply(lambda col: col.str.strip())
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{p} is not a well-formed CSV file ({str(exc).strip().splitlines()[0]}); fix the file") from None


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
    if pd.api.types.is_float_dtype(col):
        return col
    return pd.to_numeric(col.astype(object), errors="coerce")


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
    options = options or TabularOptions()
    frames = _read_frames(paths, options)
    encoded = _encode(frames, paths, options)
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
    options = options or TabularOptions()
    encoded = _encode(_read_frames(paths, options), paths, options)
    names = encoded["class_names"]
    dataset = Dataset(name or p.stem, encoded["x"]["train"], encoded["y"]["train"], len(names), class_names=names)
    return dataset, encoded["preprocessing"]


def _read_frames(paths: dict[str, str], options: TabularOptions) -> dict[str, pd.DataFrame]:
    """Each file as :func:`read_table` gives it; the label, the columns named in ``categorical``
    and the training file's text columns are read as text in every file, so that a category is
    the same string in all of them (``"1"``, never ``1.0``)."""
    header = table_header(paths["train"])
    text = {_label_name(options, header, paths["train"])}
    if isinstance(options.categorical, tuple):
        text.update(options.categorical)
    frames = {"train": read_table(paths["train"], text)}
    text.update(c for c, dtype in frames["train"].dtypes.items() if not pd.api.types.is_float_dtype(dtype))
    for part, path in paths.items():
        if part != "train":
            frames[part] = read_table(path, text)
    return frames


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
    one_hot, blocks = _one_hot(cat, categorical, len(numeric))
    x = {part: _features(num[part], blocks[part]) for part in frames}
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


def _features(num: np.ndarray, one_hot: np.ndarray) -> np.ndarray:
    """The numeric block then the one-hot block, written straight into one float32 array (no
    float64 copy of the whole table on the way)."""
    out = np.empty((len(num), num.shape[1] + one_hot.shape[1]), dtype=np.float32)
    out[:, : num.shape[1]] = num
    out[:, num.shape[1] :] = one_hot
    return out


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
    cat: dict[str, np.ndarray], categorical: list[str], n_numeric: int
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    if not categorical:
        return {}, {part: np.empty((len(block), 0)) for part, block in cat.items()}
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
    encoder.fit(cat["train"].astype(str))
    # One column per category: a column of distinct strings would expand to rows x rows.
    width = n_numeric + sum(len(c) for c in encoder.categories_)
    rows = sum(len(block) for block in cat.values())
    check_at_most("features", width, f"the features after one-hot encoding {', '.join(categorical)}")
    check_at_most("array_bytes", rows * width * 4, f"the table after one-hot encoding {', '.join(categorical)} ({rows:,} x {width:,} float32)")
    blocks = {part: encoder.transform(block.astype(str)) for part, block in cat.items()}
    info = {c: {"categories": [str(v) for v in cats]} for c, cats in zip(categorical, encoder.categories_, strict=True)}
    return info, blocks


def _unknown_counts(cat: dict[str, np.ndarray], j: int, categories: Sequence[str]) -> dict[str, int]:
    known = set(categories)
    return {part: int(sum(str(v) not in known for v in block[:, j])) for part, block in cat.items() if part != "train"}
