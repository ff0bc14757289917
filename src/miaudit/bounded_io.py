"""Reading files a user hands in, within :mod:`miaudit.limits`: regular files only, sizes checked
before anything is allocated, JSON bounded in size and depth, ``.npz`` never unpickled.

Every reader of user files goes through here, so a FIFO, ``/dev/zero``, a zip bomb or a
10,000-deep JSON document is one line and exit 2 wherever it is handed in.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import DataError
from miaudit.limits import check_at_most, limits


def regular_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` if it names an existing regular file within ``file_bytes``; DataError otherwise.

    FIFOs, devices and sockets are refused: reading one can block forever or never end.
    """
    p = Path(path).expanduser()
    if not str(path).strip():
        raise DataError(f"{what}: an empty path was given; name a file")
    try:
        info = p.stat()
    except FileNotFoundError:
        raise DataError(f"{what} {str(p)!r} does not exist; check the path") from None
    except OSError as exc:
        raise DataError(f"{what} {str(p)!r} cannot be read ({exc.strerror or exc}); check the path and its permissions") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{what} {str(p)!r} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{what} {str(p)!r} is not a regular file (a device, FIFO or socket); give a file")
    check_at_most("file_bytes", info.st_size, f"{what} {p.name!r}")
    return p


def read_bytes(path: str | os.PathLike[str], what: str, *, limit: str = "file_bytes") -> bytes:
    """The whole of a regular file, at most limit ``limit`` bytes (checked while reading too,
    in case the file grows)."""
    p = regular_file(path, what)
    bound = getattr(limits(), limit)
    check_at_most(limit, p.stat().st_size, f"{what} {p.name!r}")
    try:
        with p.open("rb") as f:
            data = f.read(bound + 1)
    except OSError as exc:
        raise DataError(f"{what} {str(p)!r} cannot be read ({exc.strerror or exc})") from None
    check_at_most(limit, len(data), f"{what} {p.name!r}")
    return data


def parse_json(raw: bytes | str, what: str) -> Any:
    """A JSON document within ``json_bytes`` and ``json_depth``; NaN/Infinity refused."""
    check_at_most("json_bytes", len(raw), f"{what} (bytes)")
    check_at_most("json_depth", _nesting(raw), f"{what}'s nesting depth")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} is not valid JSON ({str(exc).splitlines()[0]})") from None


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """A JSON file, bounded like :func:`parse_json`."""
    return parse_json(read_bytes(path, what, limit="json_bytes"), f"{what} {Path(path).name!r}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _nesting(raw: bytes | str) -> int:
    """Deepest bracket nesting outside strings, without parsing (so a deep document cannot
    exhaust the parser's recursion)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_npz(path: str | os.PathLike[str], what: str, *, how: str = "save plain numeric arrays with numpy.savez") -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` archive, each checked before it is read.

    Each member's ``.npy`` header gives its dtype and shape; object arrays (which would need
    unpickling) are refused, and so is any member whose expanded size passes ``array_bytes``,
    whose records pass ``records``, or whose stored size disagrees with its header: a 1.5 MB
    archive cannot make miaudit allocate 1.5 GB. ``how`` is appended to every error.
    """
    p = regular_file(path, what)
    if not zipfile.is_zipfile(p):
        with p.open("rb") as f:
            magic = f.read(6)
        if magic == b"\x93NUMPY":
            raise DataError(f"{p.name} is a single .npy array, not an .npz archive; {how}")
        raise DataError(f"{p.name} is not a .npz archive; {how}")
    try:
        with zipfile.ZipFile(p) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            _check_sparse(infos, p, how)
            expanded = sum(_check_member(archive, info, p, how) for info in infos)
            check_at_most("array_bytes", expanded, f"{p.name}'s arrays, expanded")
        with np.load(p, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(f"{p.name} holds object arrays, which miaudit never unpickles (that can run code); {how}") from None
        raise DataError(f"{p.name} is not a valid .npz file ({str(exc).splitlines()[0] if str(exc) else exc!r}); {how}") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, RuntimeError, NotImplementedError) as exc:
        raise DataError(f"{p.name} is not a readable .npz file (corrupt or not a numpy archive: {type(exc).__name__}); {how}") from None


def _check_sparse(infos: list[zipfile.ZipInfo], p: Path, how: str) -> None:
    names = {i.filename.removesuffix(".npy") for i in infos}
    if {"format", "shape", "data"} <= names and ({"indices", "indptr"} <= names or {"row", "col"} <= names):
        raise DataError(f"{p.name} is a scipy sparse matrix (scipy.sparse.save_npz), which miaudit does not read: convert it with .toarray(); {how}")


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, p: Path, how: str) -> int:
    """The expanded size in bytes of one member, after checking its header."""
    name = info.filename
    if not name.endswith(".npy"):
        raise DataError(f"{p.name} holds {name!r}, which is not a numpy array; {how}")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, _, dtype = read_header(f)
        except ValueError as exc:
            raise DataError(f"{p.name}: member {name!r} has no valid .npy header ({exc}); {how}") from None
    if dtype.hasobject:
        raise DataError(f"{p.name}: array {name[:-4]!r} is an object (pickled) array, which miaudit never unpickles (that can run code); {how}")
    count = int(np.prod(shape, dtype=object))
    expanded = count * dtype.itemsize
    check_at_most("array_bytes", expanded, f"{p.name}: array {name[:-4]!r} expanded ({'x'.join(map(str, shape))} {dtype})")
    if shape:
        check_at_most("records", int(shape[0]), f"{p.name}: array {name[:-4]!r}'s records")
    # A header that claims less than the stored data would let np.load read past it; more than
    # stored is a truncated file. Either way the archive is not what it says.
    if info.file_size < expanded:
        raise DataError(f"{p.name}: array {name[:-4]!r} is truncated (header says {expanded} bytes, {info.file_size} stored); {how}")
    return expanded


# ----------------------------------------------------------------------------- CSV tables

_HEADER_LINE_BYTES = 64 * (1 << 20)
"""The longest first row read (a million columns of 60-character names)."""


def csv_first_row(path: str | os.PathLike[str], what: str, *, delimiter: str = ",") -> list[str] | None:
    """The cells of the first non-blank row of a CSV file, stripped; None if the file has none.

    Reads that row only (lines of at most 64 MiB), so the header can be checked before a parser
    sees the file.
    """
    p = regular_file(path, what)
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            while True:
                line = f.readline(_HEADER_LINE_BYTES)
                if not line:
                    return None
                if line.strip():
                    break
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p} cannot be read as a text CSV file ({exc})") from None
    if not line.endswith(("\n", "\r")) and len(line) >= _HEADER_LINE_BYTES:
        raise DataError(f"{p}: the first row is longer than {_HEADER_LINE_BYTES >> 20} MiB; is this a CSV file?")
    try:
        return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
    except (csv.Error, StopIteration) as exc:
        raise DataError(f"{p}: the first row is not valid CSV ({exc})") from None


def check_header_names(names: list[str], source: str) -> None:
    """Refuse a header with a repeated or an empty column name.

    A repeated name is never resolved by position: a reader that takes the first ``label`` of
    two would silently turn the real labels into a feature.
    """
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{source}: column name(s) {', '.join(map(repr, dupes))} appear more than once in the header; rename them")
    if "" in names:
        raise DataError(f"{source}: column {names.index('') + 1} of the header has no name; name every column")


def check_table_size(path: str | os.PathLike[str], columns: int, cell_bytes: int, what: str) -> int:
    """Check the table a CSV file expands to, before parsing it: rows against ``records``,
    ``columns`` against ``features`` and rows x columns x ``cell_bytes`` against ``array_bytes``.

    Rows are counted as line breaks (one pass over the file in 1 MiB blocks, nothing kept), an
    upper bound of the records a parser finds. Returns that count.
    """
    p = regular_file(path, what)
    rows = 0
    last = b"\n"
    try:
        with p.open("rb") as f:
            while block := f.read(1 << 20):
                rows += block.count(b"\n")
                last = block[-1:]
    except OSError as exc:
        raise DataError(f"{what} {str(p)!r} cannot be read ({exc.strerror or exc})") from None
    rows += last != b"\n"  # a last line without a line break
    check_at_most("records", rows, f"{what} {p.name!r}'s rows")
    check_at_most("features", columns, f"{what} {p.name!r}'s columns")
    check_at_most("array_bytes", rows * columns * cell_bytes, f"{what} {p.name!r} as a table in memory ({rows:,} rows x {columns:,} columns)")
    return rows


def pack_rows(rows: Iterable[list[float]], width: int, dtype: type = np.float32) -> np.ndarray:
    """Rows of ``width`` numbers as one (n, width) array, packed a block of about a million
    values at a time: a CSV reader never holds a Python list of every row."""
    block_rows = max(1, (1 << 20) // max(1, width))
    blocks: list[np.ndarray] = []
    pending: list[list[float]] = []
    for row in rows:
        pending.append(row)
        if len(pending) == block_rows:
            blocks.append(np.array(pending, dtype=dtype))
            pending = []
    if pending:
        blocks.append(np.array(pending, dtype=dtype))
    return np.concatenate(blocks) if blocks else np.empty((0, width), dtype=dtype)
