"""Location30 / Purchase100 / Texas100 readers, on small archives in the authors' format made here."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from miaudit.data import load_dataset
from miaudit.data.shokri_archives import binary_matrix, load_location_archive, load_texas_archive
from miaudit.errors import DataError


def write_tgz(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def table(rng: np.random.Generator, n: int, k: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 2, (n, k)), rng.integers(1, num_classes + 1, n)


def label_first_csv(x: np.ndarray, labels: np.ndarray, *, quote: bool, eol: str = "\n") -> bytes:
    lab = [f'"{v}"' if quote else str(v) for v in labels]
    return "".join(f"{lb}," + ",".join(map(str, row)) + eol for lb, row in zip(lab, x, strict=True)).encode()


def test_location_archive(tmp_path):
    rng = np.random.default_rng(0)
    x, labels = table(rng, 40, 446, 30)
    archive = write_tgz(tmp_path / "dataset_location.tgz", {"bangkok": label_first_csv(x, labels, quote=True)})
    ds = load_location_archive(archive)
    assert ds.x.shape == (40, 446) and ds.x.dtype == np.float32
    assert np.array_equal(ds.x, x) and np.array_equal(ds.y, labels - 1)
    assert ds.num_classes == 30 and ds.class_names[0] == "1"


def test_purchase100_through_the_registry(tmp_path):
    rng = np.random.default_rng(1)
    x, labels = table(rng, 25, 600, 100)
    labels[0], labels[1] = 1, 100
    write_tgz(
        tmp_path / "purchase100" / "dataset_purchase.tgz", {"dataset_purchase": label_first_csv(x, labels, quote=False)}
    )
    ds = load_dataset("purchase100", tmp_path)
    assert ds.x.shape == (25, 600) and ds.num_classes == 100
    assert np.array_equal(ds.x, x) and ds.y[0] == 0 and ds.y[1] == 99


def test_texas100_through_the_registry(tmp_path):
    rng = np.random.default_rng(2)
    x, labels = table(rng, 30, 61, 100)  # the real file has ~6170 features; the width is read from the file
    feats = "".join(",".join(map(str, row)) + "\n" for row in x).encode()
    labs = "".join(f"{v}\n" for v in labels).encode()
    write_tgz(tmp_path / "dataset_texas.tgz", {"texas/100/feats": feats, "texas/100/labels": labs})
    ds = load_dataset("texas100", tmp_path)
    assert ds.x.shape == (30, 61) and np.array_equal(ds.x, x) and np.array_equal(ds.y, labels - 1)


def test_texas_label_count_must_match(tmp_path):
    archive = write_tgz(tmp_path / "t.tgz", {"texas/100/feats": b"0,1\n1,0\n", "texas/100/labels": b"1\n"})
    with pytest.raises(DataError, match="2 feature rows but 1 labels"):
        load_texas_archive(archive)


def test_fast_and_general_parsers_agree():
    fast = binary_matrix(b"0,1,1\n1,0,0\n", source="s")
    general = binary_matrix(b"0.0, 1, 1\r\n1,0.0,0\r\n\r\n", source="s")  # CRLF, spaces, floats
    assert fast.dtype == general.dtype == np.uint8 and np.array_equal(fast, general)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"0,2,1\n", "must be 0 or 1"),
        (b"0,1,1\n1,0\n", "not a comma-separated table"),
        (b"0,x,1\n", "not a comma-separated table"),
        (b"0,nan,1\n", "must be 0 or 1"),
    ],
)
def test_bad_feature_tables(text, match):
    with pytest.raises(DataError, match=match):
        binary_matrix(text, source="s")


def test_wrong_feature_count():
    with pytest.raises(DataError, match="expected 446"):
        binary_matrix(b"0,1\n", source="s", n_features=446)


@pytest.mark.parametrize(
    ("csv", "match"),
    [
        (b'"31",' + b"0," * 445 + b"1\n", r"labels must lie in 1\.\.30"),
        (b'"0",' + b"0," * 445 + b"1\n", r"labels must lie in 1\.\.30"),
        (b'"abc",' + b"0," * 445 + b"1\n", "not an integer"),
        (b'"3"\n', "label but no features|holds no rows|not a comma"),
    ],
)
def test_bad_labels(tmp_path, csv, match):
    archive = write_tgz(tmp_path / "dataset_location.tgz", {"bangkok": csv})
    with pytest.raises(DataError, match=match):
        load_location_archive(archive)


def test_member_names_must_match_exactly(tmp_path):
    row = b'"1",' + b"0," * 445 + b"1\n"
    for hostile in ("../bangkok", "/bangkok", "data/bangkok", "../../etc/bangkok"):
        archive = write_tgz(tmp_path / "h.tgz", {hostile: row})
        with pytest.raises(DataError, match="has no member 'bangkok'"):
            load_location_archive(archive)


def test_link_members_are_refused(tmp_path):
    archive = write_tgz(tmp_path / "l.tgz", {}, links={"bangkok": "/etc/passwd"})
    with pytest.raises(DataError, match="not a regular file"):
        load_location_archive(archive)


def test_corrupt_and_truncated_archives(tmp_path):
    good = write_tgz(tmp_path / "g.tgz", {"bangkok": b'"1",' + b"0," * 445 + b"1\n" * 1})
    truncated = tmp_path / "t.tgz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "x.tgz"
    garbage.write_bytes(b"this is not a tar archive at all" * 20)
    for bad in (truncated, garbage):
        with pytest.raises(DataError, match="not a readable tar archive"):
            load_location_archive(bad)
