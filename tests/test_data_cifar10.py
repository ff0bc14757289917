"""CIFAR-10 readers (binary release, image tarball, unpacked folder) and the decode cache, on files made here."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from miaudit.data import cifar10, load_dataset
from miaudit.data.cifar10 import CLASS_NAMES, check_arrays, read_binary_archive, read_image_archive, read_image_folder
from miaudit.errors import DataError, DataMissingError


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def batch(labels: list[int]) -> bytes:
    """Records whose red/green/blue planes are filled with label+1, +2, +3 (checks channel order)."""
    out = b""
    for lab in labels:
        out += bytes([lab]) + bytes([lab + 1]) * 1024 + bytes([lab + 2]) * 1024 + bytes([lab + 3]) * 1024
    return out


def write_binary(path: Path, *, test_batch: bytes | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for i in range(1, 6):
            add(tar, f"cifar-10-batches-bin/data_batch_{i}.bin", batch([i, 9]))
        add(tar, "cifar-10-batches-bin/test_batch.bin", batch([0, 3, 7]) if test_batch is None else test_batch)
        add(tar, "cifar-10-batches-bin/batches.meta.txt", "\n".join(CLASS_NAMES).encode())
    return path


def png(color: tuple[int, int, int], mode: str = "RGB", size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size), color if mode != "L" else color[0]).save(buf, format="PNG")
    return buf.getvalue()


def test_binary_release(tmp_path):
    arrays = read_binary_archive(write_binary(tmp_path / "cifar-10-binary.tar.gz"))
    x_train, y_train = arrays["train"]
    assert x_train.shape == (10, 3, 32, 32) and x_train.dtype == np.uint8
    assert list(y_train) == [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]
    assert tuple(x_train[0, :, 5, 7]) == (2, 3, 4)  # planes are R, G, B in that order
    assert list(arrays["test"][1]) == [0, 3, 7]
    check_arrays(arrays, "t", counts=None)
    with pytest.raises(DataError, match="holds 10 train images, CIFAR-10 has 50000"):
        check_arrays(arrays, "t")


@pytest.mark.parametrize(
    ("test_batch", "match"),
    [
        (batch([1])[:-1], "not a whole number"),
        (bytes([10]) + bytes(3072), "not a CIFAR-10 class"),
        (b"", "not a whole number"),
    ],
)
def test_binary_corrupt_batches(tmp_path, test_batch, match):
    with pytest.raises(DataError, match=match):
        read_binary_archive(write_binary(tmp_path / "c.tar.gz", test_batch=test_batch))


def test_binary_missing_member(tmp_path):
    with tarfile.open(tmp_path / "m.tar.gz", "w:gz") as tar:
        add(tar, "cifar-10-batches-bin/data_batch_1.bin", batch([1]))
    with pytest.raises(DataError, match="has no member 'cifar-10-batches-bin/data_batch_2.bin'"):
        read_binary_archive(tmp_path / "m.tar.gz")


def test_image_archive_orders_records_and_ignores_hostile_members(tmp_path):
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add(tar, "train/truck/0002.png", png((0, 0, 200)))
        add(tar, "train/airplane/0001.png", png((200, 0, 0)))
        add(tar, "train/truck/0001.png", png((0, 200, 0)))
        add(tar, "test/cat/0001.png", png((90, 90, 90), "L"))  # grayscale becomes RGB
        add(tar, "test/cat/notes.txt", b"not an image")
        add(tar, "../train/cat/evil.png", png((1, 2, 3)))
        add(tar, "/abs/train/cat/evil.png", png((1, 2, 3)))
        link = tarfile.TarInfo("train/dog/link.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    arrays = read_image_archive(archive)
    x, y = arrays["train"]
    assert x.shape == (3, 3, 32, 32) and list(y) == [0, 9, 9]  # by class, then file name
    assert tuple(x[0, :, 0, 0]) == (200, 0, 0) and tuple(x[1, :, 0, 0]) == (0, 200, 0)
    assert tuple(arrays["test"][0][0, :, 3, 3]) == (90, 90, 90) and list(arrays["test"][1]) == [3]


def test_image_archive_rejects_unknown_class_and_bad_images(tmp_path):
    with tarfile.open(tmp_path / "u.tar.gz", "w:gz") as tar:
        add(tar, "train/cow/0001.png", png((1, 1, 1)))
    with pytest.raises(DataError, match="unknown class folder 'cow'"):
        read_image_archive(tmp_path / "u.tar.gz")
    with tarfile.open(tmp_path / "b.tar.gz", "w:gz") as tar:
        add(tar, "train/cat/0001.jpg", b"\xff\xd8 not really a jpeg")
        add(tar, "test/cat/0001.png", png((1, 1, 1)))
    with pytest.raises(DataError, match="not a readable PNG or JPEG"):
        read_image_archive(tmp_path / "b.tar.gz")


def make_folder(root: Path) -> None:
    for part, cls, color in (
        ("train", "bird", (10, 20, 30)),
        ("train", "ship", (40, 50, 60)),
        ("test", "frog", (70, 80, 90)),
    ):
        (root / part / cls).mkdir(parents=True, exist_ok=True)
        (root / part / cls / "0001.png").write_bytes(png(color))


def test_unpacked_folder(tmp_path):
    make_folder(tmp_path)
    arrays = read_image_folder(tmp_path)
    assert list(arrays["train"][1]) == [2, 8] and list(arrays["test"][1]) == [6]
    assert tuple(arrays["test"][0][0, :, 0, 0]) == (70, 80, 90)
    ds = cifar10.to_dataset(arrays)
    assert ds.x.shape == (3, 3, 32, 32) and ds.class_names == CLASS_NAMES
    assert list(ds.parts["train"]) == [0, 1] and list(ds.parts["test"]) == [2]
    assert np.isclose(ds.x[2, 0, 0, 0], 70 / 255)


def test_registered_loader_finds_the_folder_form_and_checks_counts(tmp_path):
    make_folder(tmp_path / "cifar10")
    with pytest.raises(DataError, match="holds 2 train images, CIFAR-10 has 50000"):
        load_dataset("cifar10", tmp_path)


def test_registered_loader_offline_names_all_forms(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar-10-python.tar.gz").write_bytes(b"pickles are never read")
    with pytest.raises(DataMissingError) as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert "cifar-10-binary.tar.gz (or cifar10-jpeg.tar.gz, train)" in msg and "\n" not in msg


def test_decoded_arrays_are_cached(tmp_path, monkeypatch):
    archive = write_binary(tmp_path / "cifar-10-binary.tar.gz")
    decoded = []
    real = cifar10.read_binary_archive
    monkeypatch.setattr(cifar10, "read_binary_archive", lambda p: decoded.append(p) or real(p))
    first = cifar10.read_any(archive)
    second = cifar10.read_any(archive)
    assert len(decoded) == 1
    assert all(np.array_equal(first[p][i], second[p][i]) for p in ("train", "test") for i in (0, 1))
    cached = list((Path(os.environ["MIAUDIT_CACHE_DIR"]) / "datasets").glob("cifar10-*"))
    assert len(cached) == 1 and sorted(f.name for f in cached[0].iterdir()) == [
        "x_test.npy",
        "x_train.npy",
        "y_test.npy",
        "y_train.npy",
    ]
    (cached[0] / "x_train.npy").write_bytes(b"damaged")  # a damaged cache is rebuilt, not trusted
    third = cifar10.read_any(archive)
    assert len(decoded) == 2 and np.array_equal(third["train"][0], first["train"][0])
