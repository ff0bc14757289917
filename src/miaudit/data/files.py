"""Finding, downloading and verifying the files behind registered data sets.

A data set's files live in a data directory, either in a subfolder named after the data set
(``<data_dir>/location30/dataset_location.tgz``, the layout of the shared data folder) or at its
top level. A file that is absent is downloaded from its public address, verified against its
published sha256 and moved into place atomically; offline, the error says in one line which file
to place where.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from miaudit.data.base import DATASETS, RemoteFile
from miaudit.errors import ChecksumError, DataMissingError
from miaudit.io_utils import atomic_path, sha256_file
from miaudit.paths import cache_dir

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0
_CHECKSUM_CACHE = "checksums.json"


@dataclass(frozen=True)
class DataFile(RemoteFile):
    """A :class:`RemoteFile` with a home folder and local stand-ins.

    ``folder`` is the subfolder of the data directory the file is looked for in and downloaded
    to (default: the data set's name). ``alternatives`` are other local forms of the same data
    that are used when present instead of downloading this file (e.g. an uncompressed copy, or
    an image-folder form of CIFAR-10); their own ``sha256`` is checked when it is known.
    """

    folder: str = ""
    alternatives: tuple[RemoteFile, ...] = ()


@dataclass(frozen=True)
class FileReport:
    """What :func:`verify_files` found for one needed file.

    ``status`` is ``"ok"`` (sha256 matches the published one), ``"unverified"`` (present, but no
    checksum is published for it), ``"mismatch"`` or ``"missing"``.
    """

    name: str
    path: Path | None
    status: str
    expected: str | None = None
    actual: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "unverified")

    def to_dict(self) -> dict[str, str | bool | None]:
        """Plain values, for JSON output."""
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "status": self.status,
            "ok": self.ok,
            "expected": self.expected,
            "actual": self.actual,
        }

    def __str__(self) -> str:
        where = str(self.path) if self.path else self.name
        detail = {
            "ok": "sha256 ok",
            "unverified": "present (no published checksum)",
            "mismatch": f"sha256 MISMATCH (expected {self.expected}, got {self.actual}): delete it and fetch it again",
            "missing": "missing",
        }[self.status]
        return f"{where}: {detail}"


# ----------------------------------------------------------------------------- checksums


def _checksum_cache_path() -> Path:
    return cache_dir() / _CHECKSUM_CACHE


def _stat_key(path: Path) -> tuple[str, list[int]]:
    st = path.stat()
    return str(path.resolve()), [st.st_size, st.st_mtime_ns, st.st_ino]


def _read_checksum_cache() -> dict[str, dict]:
    try:
        data = json.loads(_checksum_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_sha256(path: Path, *, use_cache: bool = True) -> str:
    """sha256 of ``path``, remembered in the cache directory keyed on path, size, mtime and inode.

    Big archives are loaded often; hashing them each time would dominate load time.
    """
    key, stamp = _stat_key(path)
    if use_cache:
        entry = _read_checksum_cache().get(key)
        if isinstance(entry, dict) and entry.get("stat") == stamp and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
    digest = sha256_file(path)
    cache = _read_checksum_cache()
    cache[key] = {"stat": stamp, "sha256": digest}
    try:
        with atomic_path(_checksum_cache_path()) as tmp:
            tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
    except OSError as exc:  # a read-only cache only costs speed
        log.debug("could not write checksum cache: %s", exc)
    return digest


def verify_file(file: RemoteFile, path: Path, *, use_cache: bool = True) -> None:
    """Raise :class:`ChecksumError` if ``path`` does not match ``file.sha256`` (None: no check)."""
    if file.sha256 is None or path.is_dir():
        return
    actual = file_sha256(path, use_cache=use_cache)
    if actual != file.sha256.lower():
        refetch = f" (miaudit downloads it from {file.url})" if file.url else ""
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {file.sha256}: the file is corrupt or a "
            f"different version; delete it and fetch it again{refetch}"
        )


# ----------------------------------------------------------------------------- lookup


def home_folder(file: RemoteFile, dataset: str) -> str:
    """The subfolder of the data directory that ``file`` belongs in."""
    return (file.folder if isinstance(file, DataFile) else "") or dataset


def _search_dirs(data_dir: Path, folder: str) -> list[Path]:
    return [data_dir / folder, data_dir] if folder else [data_dir]


def _variants(file: RemoteFile) -> tuple[RemoteFile, ...]:
    return (file, *(file.alternatives if isinstance(file, DataFile) else ()))


def find_local(file: RemoteFile, data_dir: Path, dataset: str) -> tuple[RemoteFile, Path] | None:
    """The first present local form of ``file`` (itself, then its alternatives), unverified."""
    folder = home_folder(file, dataset)
    for variant in _variants(file):
        for d in _search_dirs(data_dir, folder):
            p = d / variant.name
            # A folder form (e.g. an unpacked train/) counts only inside the data set's own
            # subfolder: at the top level a generic name could belong to anything.
            if p.exists() and not (p.is_dir() and d == data_dir and folder):
                return variant, p
    return None


def download_file(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (a temporary path; the caller moves it into place)."""
    log.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def _fetch(file: RemoteFile, dest: Path) -> None:
    """Download ``file`` to ``dest`` atomically, verifying its checksum before it lands."""
    assert file.url is not None
    with atomic_path(dest) as tmp:
        download_file(file.url, tmp)
        if file.sha256 is not None:
            actual = sha256_file(tmp)
            if actual != file.sha256.lower():
                raise ChecksumError(
                    f"downloaded {file.name} from {file.url} but its sha256 is {actual}, expected "
                    f"{file.sha256}: the download was corrupted or the server copy changed; try again"
                )


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _display(file: RemoteFile) -> str:
    names = [v.name for v in _variants(file)]
    return names[0] if len(names) == 1 else f"{names[0]} (or {', '.join(names[1:])})"


def _usable_instead(dataset: str, files: Sequence[RemoteFile], data_dir: Path) -> list[str]:
    """Other registered data sets sharing a file with these whose own files are all present."""
    names = {f.name for f in files}
    out = []
    for other_name, spec in DATASETS.items():
        if other_name == dataset or spec.embedded or not spec.files:
            continue
        if not names & {f.name for f in spec.files}:
            continue
        if all(find_local(f, data_dir, other_name) for f in spec.files):
            out.append(other_name)
    return out


def _missing_message(
    dataset: str,
    needed: Sequence[RemoteFile],
    missing: Sequence[tuple[RemoteFile, str | None]],
    data_dir: Path,
    download: bool,
) -> str:
    files = [f for f, _ in missing]
    folders = sorted({str(data_dir / home_folder(f, dataset)) for f in files})
    pronoun = "it" if len(files) == 1 else "them"
    msg = f"{dataset} needs {' and '.join(_display(f) for f in files)}: place {pronoun} in {' or '.join(folders)}/"
    urls = [f.url for f in files if f.url]
    errors = [err for _, err in missing if err]
    if not urls:
        msg += " (no public download address is known for it)"
    elif not download:
        msg += f" or allow downloads ({' '.join(urls)})"
    else:
        tried = f"; download failed: {errors[0]}" if errors else ""
        msg += f" or run with network access ({' '.join(urls)}{tried})"
    alternatives = _usable_instead(dataset, needed, data_dir)
    if alternatives:
        msg += f"; the files present are enough for {', '.join(repr(a) for a in alternatives)}"
    return msg


def locate_all(files: Iterable[RemoteFile], data_dir: Path, *, dataset: str, download: bool = True) -> dict[str, Path]:
    """Paths of all ``files`` (by canonical name), verified, downloading absent ones.

    Raises :class:`ChecksumError` for a file that does not match its checksum and one
    :class:`DataMissingError` naming every file that is absent and could not be downloaded.
    """
    data_dir = Path(data_dir)
    files = list(files)
    found: dict[str, Path] = {}
    missing: list[tuple[RemoteFile, str | None]] = []
    for file in files:
        local = find_local(file, data_dir, dataset)
        if local is not None:
            variant, path = local
            verify_file(variant, path)
            found[file.name] = path
            continue
        if not download or file.url is None:
            missing.append((file, None))
            continue
        dest = data_dir / home_folder(file, dataset) / file.name
        try:
            _fetch(file, dest)
        except ChecksumError:
            raise
        except Exception as exc:  # noqa: BLE001 - any network/OS failure means "not available"
            missing.append((file, _short(exc)))
            continue
        found[file.name] = dest
    if missing:
        raise DataMissingError(_missing_message(dataset, files, missing, data_dir, download))
    return found


def locate(spec_file: RemoteFile, data_dir: Path, *, download: bool = True, dataset: str = "") -> Path:
    """Path of one needed file: found and verified in ``data_dir``, or downloaded there.

    ``dataset`` names the data set in messages and is the default subfolder.
    """
    return locate_all([spec_file], data_dir, dataset=dataset or spec_file.name, download=download)[spec_file.name]


def verify_files(files: Iterable[RemoteFile], data_dir: Path, *, dataset: str) -> list[FileReport]:
    """Re-hash every present file (ignoring the checksum cache) and report its state."""
    reports = []
    for file in files:
        local = find_local(file, Path(data_dir), dataset)
        if local is None:
            reports.append(FileReport(file.name, None, "missing", file.sha256))
            continue
        variant, path = local
        if variant.sha256 is None or path.is_dir():
            reports.append(FileReport(variant.name, path, "unverified"))
            continue
        actual = file_sha256(path, use_cache=False)
        status = "ok" if actual == variant.sha256.lower() else "mismatch"
        reports.append(FileReport(variant.name, path, status, variant.sha256, actual))
    return reports


def dir_signature(root: Path, suffixes: Iterable[str]) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of every file under ``root`` with one of ``suffixes``.

    A cheap identity for an unpacked folder, used as a cache key where no checksum exists.
    """
    wanted = {s.lower() for s in suffixes}
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            if Path(n).suffix.lower() in wanted:
                p = Path(dirpath) / n
                st = p.stat()
                out.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return sorted(out)
