"""A user's own data: CSV tables, NPZ arrays and image folders.

Every reader returns a :class:`Dataset`; :func:`load_user_data` picks the reader by the path's
extension (or ``directory``) through :data:`USER_FORMATS`. String labels become indices in
sorted order and the original strings are kept as ``class_names``. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from miaudit.bounded_io import check_header_names, check_table_size, csv_first_row, pack_rows, read_bytes, read_npz
from miaudit.data.base import Dataset
from miaudit.data.labels import LABEL_COLUMN_NAMES, encode_labels
from miaudit.errors import ConfigError, DataError
from miaudit.limits import LimitError, check_at_most, limits
from miaudit.registry import Registry

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SPLITS = ("train", "test")


def _check_finite(x: np.ndarray, source: str, columns: Sequence[str] | None = None) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0][:2])
        where = f"row {row + 1}, column {columns[col]!r}" if columns else f"record {row}"
        raise DataError(
            f"{source}: {int(bad.sum())} feature value(s) are NaN or infinite (first at {where}); "
            "fill in or drop missing values before loading"
        )


# ----------------------------------------------------------------------------- CSV


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _label_index(label_column: int | str | None, header: list[str] | None, width: int, source: str) -> int:
    if isinstance(label_column, str):
        if header is None:
            raise ConfigError(f"{source} has no header row, so label_column must be a column index, e.g. 0 or -1")
        lowered = [h.strip().lower() for h in header]
        if label_column in header:
            return header.index(label_column)
        if label_column.lower() in lowered:
            return lowered.index(label_column.lower())
        raise ConfigError(f"{source} has no column {label_column!r}; its columns are {', '.join(header)}")
    if label_column is None:
        if header is not None:
            for name in LABEL_COLUMN_NAMES:
                if name in (h.strip().lower() for h in header):
                    return [h.strip().lower() for h in header].index(name)
        raise ConfigError(
            f"{source}: say which column holds the labels with label_column (a column name, or an "
            f"index such as 0 for the first or -1 for the last); no column is named {'/'.join(LABEL_COLUMN_NAMES)}"
        )
    if not -width <= label_column < width:
        raise ConfigError(f"{source}: label_column {label_column} is out of range for {width} columns")
    return label_column % width


def load_csv(
    path: str | os.PathLike[str],
    label_column: int | str | None = None,
    *,
    delimiter: str | None = None,
    header: bool | None = None,
    name: str | None = None,
) -> Dataset:
    """A CSV (or TSV) table: one column of labels, every other column a numeric feature.

    ``label_column`` is a header name or a column index (negative counts from the end); if
    None, a column named label/labels/y/class/target is used. ``header`` None means: the first
    row is a header if any of its feature cells is not a number. ``delimiter`` defaults to a
    tab for ``.tsv`` files and a comma otherwise.

    The header is checked (no repeated or empty names) and the table's size against the limits
    before any row is parsed; rows are then streamed into float32 blocks, so memory stays near
    the 4 bytes per feature value the data set keeps.
    """
    path = Path(path)
    source = str(path)
    delimiter = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    first = csv_first_row(path, "data file", delimiter=delimiter)
    if first is None:
        raise DataError(f"{source} is empty")
    width = len(first)
    if width < 2:
        raise DataError(f"{source}: found one column; a label column and at least one feature are needed")
    if header is None:
        skip = label_column if isinstance(label_column, int) and -width <= label_column < width else None
        cells = [c for j, c in enumerate(first) if skip is None or j != skip % width]
        header = isinstance(label_column, str) or not all(_is_number(c) for c in cells)
    names = first if header else None
    if names is not None:
        check_header_names(names, source)
    li = _label_index(label_column, names, width, source)
    feature_cols = [j for j in range(width) if j != li]
    check_table_size(path, len(feature_cols), np.dtype(np.float32).itemsize, "data file")
    label_codes: dict[str, int] = {}
    codes: list[int] = []
    x = pack_rows(_csv_rows(path, source, delimiter, width, li, feature_cols, names, label_codes, codes), len(feature_cols))
    if len(x) == 0:
        raise DataError(f"{source} has a header but no data rows")
    col_names = [names[j] if names else str(j) for j in feature_cols]
    _check_finite(x, source, col_names)
    indices, class_names = encode_labels(np.array(list(label_codes), dtype=str), source=source)
    y = indices[np.array(codes, dtype=np.int64)]
    return Dataset(name or path.stem, x, y, len(class_names), class_names=class_names)


def _csv_rows(
    path: Path, source: str, delimiter: str, width: int, li: int, feature_cols: list[int], names: list[str] | None,
    label_codes: dict[str, int], codes: list[int],
) -> Iterator[list[float]]:  # fmt: skip
    """Each data row's features as floats; its label's text is coded into ``label_codes`` /
    ``codes`` (one small int a row, the distinct texts once)."""
    line = 0
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for r in csv.reader(f, delimiter=delimiter):
                if not any(c.strip() for c in r):
                    continue
                line += 1
                if line == 1 and names is not None:
                    continue
                if len(r) != width:
                    raise DataError(f"{source}: row {line} has {len(r)} fields, the first row {width}; fix the file")
                try:
                    features = [float(r[j]) for j in feature_cols]
                except ValueError:
                    raise _bad_cell(source, line, r, feature_cols, names) from None
                codes.append(label_codes.setdefault(r[li].strip(), len(label_codes)))
                yield features
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{source} cannot be read as a text CSV file ({exc})") from None


def _bad_cell(source: str, line: int, row: list[str], feature_cols: list[int], names: list[str] | None) -> DataError:
    j = next(j for j in feature_cols if not _is_number(row[j]))
    where = f"{source}: row {line}, column {names[j] if names else j!r}"
    if not row[j].strip():
        return DataError(f"{where} is empty; fill in or drop missing values before loading")
    return DataError(f"{where} holds {row[j][:30]!r}, not a number; features must be numeric (encode categories as numbers first)")


# ----------------------------------------------------------------------------- NPZ


def load_npz(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Arrays ``x`` (n, features...) and ``y`` (n,) from an ``.npz`` file (optional ``class_names``).

    Loaded with ``allow_pickle=False``: an object array is refused, never unpickled.
    """
    path = Path(path)
    how = "save it with np.savez(path, x=features.astype('float32'), y=labels)"
    arrays = read_npz(path, "data file", how=how)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks array(s) {', '.join(missing)} (has {', '.join(arrays) or 'none'}); {how}")
    x, y = arrays["x"], arrays["y"]
    class_names = arrays.get("class_names")
    if x.dtype.kind not in "biuf" or x.ndim < 2:
        raise DataError(f"{path}: x must be a numeric array of shape (n, features...), got {x.dtype} {x.shape}; {how}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: y must be a vector with one label per row of x, got {y.shape} for x {x.shape}")
    if len(x) == 0:
        raise DataError(f"{path}: x and y hold no records; an audit needs records of two classes or more")
    x = x.astype(np.float32)
    _check_finite(x, str(path))
    if class_names is not None:
        if class_names.dtype.kind not in "US" or class_names.ndim != 1 or y.dtype.kind not in "iu":
            raise DataError(f"{path}: class_names must be a vector of strings naming the integer labels in y")
        names = tuple(str(c) for c in class_names)
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(f"{path}: labels must lie in [0, {len(names)}) to match class_names")
        return Dataset(name or path.stem, x, y.astype(np.int64), len(names), class_names=names)
    y_idx, names = encode_labels(y, source=str(path))
    return Dataset(name or path.stem, x, y_idx, len(names), class_names=names)


# ----------------------------------------------------------------------------- images


def decode_image(data: bytes, source: str, mode: str | None = None) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 array (H, W) for grayscale or (H, W, 3) for colour.

    ``mode`` ("L" or "RGB") forces one; by default grayscale stays grayscale and every other
    mode (palette, alpha, CMYK...) becomes RGB. The size in the image's header is checked
    against the ``image_pixels`` limit before any pixel is decoded (a few-KB PNG can claim
    billions of pixels); Pillow's own decompression-bomb guard is tied to the same limit.
    """
    bound = limits().image_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _pillow_pixel_bound(bound), Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as im:
                check_at_most("image_pixels", im.width * im.height, f"image {source} ({im.width}x{im.height})")
                target = mode or ("L" if im.mode in ("1", "L", "I", "I;16", "F") else "RGB")
                if im.mode != target:
                    im = im.convert(target)
                channels = 1 if target == "L" else 3
                # tobytes + frombuffer is several times faster than np.asarray on tiny images
                pixels = np.frombuffer(im.tobytes(), dtype=np.uint8)
                shape = (im.height, im.width) if channels == 1 else (im.height, im.width, channels)
                return pixels.reshape(shape)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise LimitError(
            f"image {source} has more pixels than miaudit's limit of {bound:,}; if it is what you meant, "
            f"raise it with --limit image_pixels=N"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{source} is not a readable PNG or JPEG image ({exc})") from None


@contextlib.contextmanager
def _pillow_pixel_bound(bound: int) -> Iterator[None]:
    """Pillow's ``MAX_IMAGE_PIXELS`` (a module global it reads when opening) set to ``bound``."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = bound
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def images_to_array(images: Sequence[np.ndarray], source: str) -> np.ndarray:
    """Stack decoded images into uint8 (n, C, H, W); grayscale is widened to RGB if colour is mixed in."""
    if not images:
        raise DataError(f"{source}: no images found")
    shapes = {im.shape[:2] for im in images}
    if len(shapes) > 1:
        raise DataError(f"{source}: images have different sizes {sorted(shapes)[:4]}; resize them to one size first")
    if all(im.ndim == 2 for im in images):
        return np.stack(images)[:, None, :, :]
    rgb = [np.repeat(im[:, :, None], 3, axis=2) if im.ndim == 2 else im for im in images]
    return np.stack(rgb).transpose(0, 3, 1, 2)


def scan_class_folders(root: Path) -> dict[str, list[Path]]:
    """``<root>/<class>/<image>`` -> {class: sorted image paths}; hidden entries are skipped."""
    out: dict[str, list[Path]] = {}
    for d in sorted(_entries(root)):
        if d.is_dir() and not d.name.startswith("."):
            files = sorted(
                p
                for p in _entries(d)
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if files:
                out[d.name] = files
    return out


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError as exc:
        raise DataError(f"image folder {str(folder)!r} cannot be listed ({exc.strerror or exc}); check its permissions") from None


def read_image_tree(
    root: Path, class_names: Sequence[str] | None = None, *, mode: str | None = None
) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Decode an image folder: (class names, {part: (uint8 (n, C, H, W), int64 labels)}).

    With ``train/`` and ``test/`` subfolders the parts are those; otherwise one part ``all``.
    Labels index ``class_names`` (default: the sorted union of the class folders' names).
    """
    split = all((root / s).is_dir() for s in _SPLITS)
    trees = {s: scan_class_folders(root / s) for s in _SPLITS} if split else {"all": scan_class_folders(root)}
    found = sorted({c for t in trees.values() for c in t})
    if not found:
        raise DataError(f"{root}: no <class>/<image>.png|jpg files found; lay out images as <root>/<class>/<file>")
    names = list(class_names) if class_names is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"{root}: unexpected class folders {', '.join(unknown)}; expected {', '.join(names)}")
    index = {c: i for i, c in enumerate(names)}
    total = sum(len(files) for tree in trees.values() for files in tree.values())
    check_at_most("records", total, f"{root}'s images")
    decoded = 0
    out = {}
    for part, tree in trees.items():
        images, labels = [], []
        for cls, files in tree.items():
            for p in files:
                images.append(decode_image(read_bytes(p, "image"), str(p), mode))
                labels.append(index[cls])
                decoded += images[-1].size
                # The data set keeps float32 (4 bytes a value); the first image's size times the
                # number of files bounds it before the rest are decoded.
                expected = max(decoded, images[-1].size * total) * 4
                check_at_most("array_bytes", expected, f"{root}'s {total:,} images as float32")
        if images:
            out[part] = (images_to_array(images, str(root / part)), np.asarray(labels, dtype=np.int64))
    shapes = {a.shape[1:] for a, _ in out.values()}
    if len(shapes) > 1:
        raise DataError(f"{root}: train and test images differ in size or channels {sorted(shapes)}")
    return names, out


def load_image_folder(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Images in ``<root>/<class>/*.png|jpg``, or in ``<root>/train/<class>/`` and ``<root>/test/<class>/``.

    Classes are the folder names in sorted order. Images must share one size; x is float32
    (n, C, H, W) in [0, 1] with C = 1 if all images are grayscale, else 3.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    names, tree = read_image_tree(root)
    x = np.concatenate([a for a, _ in tree.values()]).astype(np.float32)
    x /= np.float32(255.0)  # in place: one float32 copy, not two
    y = np.concatenate([lab for _, lab in tree.values()])
    parts: dict[str, np.ndarray] = {}
    if "all" not in tree:
        start = 0
        for part, (_, lab) in tree.items():
            parts[part] = np.arange(start, start + len(lab))
            start += len(lab)
    return Dataset(name or root.name, x, y, len(names), class_names=tuple(names), parts=parts)


# ----------------------------------------------------------------------------- dispatch

UserLoader = Callable[[Path, "int | str | None"], Dataset]
USER_FORMATS: Registry[UserLoader] = Registry("user data format")
"""Readers of user data by file extension (``.csv``) or ``directory``."""


def _no_label_column(kind: str, loader: Callable[[Path], Dataset]) -> UserLoader:
    def load(path: Path, label_column: int | str | None) -> Dataset:
        if label_column is not None:
            raise ConfigError(f"label_column applies to CSV files only; {kind} carry their labels themselves")
        return loader(path)

    return load


USER_FORMATS.add(".csv", lambda path, label_column: load_csv(path, label_column))
USER_FORMATS.add(".tsv", lambda path, label_column: load_csv(path, label_column))
USER_FORMATS.add(".npz", _no_label_column(".npz files (array y)", load_npz))
USER_FORMATS.add("directory", _no_label_column("image folders (one folder per class)", load_image_folder))


def load_user_data(
    path: str | os.PathLike[str],
    *,
    label_column: int | str | None = None,
    categorical: str | Sequence[str] | None = None,
    impute: str | None = None,
    ignore_columns: Sequence[str] = (),
) -> Dataset:
    """Load a user's data set, choosing the reader by extension (``.csv``, ``.tsv``, ``.npz``) or folder.

    ``categorical`` ("auto" or column names), ``impute`` and ``ignore_columns`` apply to CSV
    files with a header (see :class:`miaudit.data.tabular.TabularOptions`); given any of them,
    the file is read by :func:`miaudit.data.tabular.load_tabular`, whose preprocessing record
    that function returns.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p} does not exist; give the path of a .csv/.npz file or an image folder")
    kind = "directory" if p.is_dir() else p.suffix.lower()
    if categorical is not None or impute is not None or ignore_columns:
        if kind not in (".csv", ".tsv"):
            raise ConfigError(f"categorical, impute and ignore_columns apply to CSV files only, not to {p}")
        from miaudit.data.tabular import TabularOptions, load_tabular  # pandas: import when needed

        cats = categorical if categorical in (None, "auto") else tuple(categorical)
        options = TabularOptions(label_column, cats, impute, tuple(ignore_columns))  # type: ignore[arg-type]
        return load_tabular(p, options)[0]
    dataset = USER_FORMATS.get(kind)(p, label_column)
    present = np.unique(dataset.y)
    if len(present) < 2:
        # Membership inference compares a trained model's outputs; a one-class model has none to compare.
        raise DataError(f"{p}: every record has label {dataset.class_names[int(present[0])] if dataset.class_names else int(present[0])!r}; an audit needs records of two classes or more")
    return dataset
