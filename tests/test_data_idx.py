"""MNIST IDX reader, on IDX files (gzip and raw) made here, including corrupt ones."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from miaudit.data import load_dataset
from miaudit.data.idx import read_idx, read_mnist_pair
from miaudit.errors import DataError, DataMissingError

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C, np.dtype(np.float64): 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    header = bytes([0, 0, _CODES[a.dtype], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: np.ndarray, *, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(a)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float64])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype is np.uint8:
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / "a.idx", a, gz=gz))
    assert out.shape == a.shape and out.dtype.isnative and np.array_equal(out, a)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_pair(tmp_path, gz):
    images, labels = digits(7)
    x, y = read_mnist_pair(write_idx(tmp_path / "i", images, gz=gz), write_idx(tmp_path / "l", labels, gz=gz))
    assert np.array_equal(x, images) and np.array_equal(y, labels)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_payload(tmp_path, gz):
    data = idx_bytes(digits(3)[0])[:-100]
    p = tmp_path / "t"
    p.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match="truncated: its header promises 2352 bytes of data, found 2252"):
        read_idx(p)


def test_truncated_header_and_stream(tmp_path):
    (tmp_path / "h").write_bytes(bytes([0, 0, 8, 3]) + b"\x00\x00")
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(tmp_path / "h")
    whole = gzip.compress(idx_bytes(digits(50)[0]))
    (tmp_path / "g").write_bytes(whole[: len(whole) // 2])  # a cut gzip stream
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(tmp_path / "g")


@pytest.mark.parametrize("header", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"PK\x03\x04", b""])
def test_wrong_magic(tmp_path, header):
    (tmp_path / "m").write_bytes(header + b"\x00" * 16)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "m")


def test_trailing_bytes_and_absurd_dims(tmp_path):
    (tmp_path / "x").write_bytes(idx_bytes(np.zeros(4, np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="beyond what its header"):
        read_idx(tmp_path / "x")
    (tmp_path / "big").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1))
    with pytest.raises(DataError, match="too large"):
        read_idx(tmp_path / "big")


def test_mnist_shape_checks(tmp_path):
    images, labels = digits(4)
    with pytest.raises(DataError, match=r"\(n, 28, 28\)"):
        read_mnist_pair(
            write_idx(tmp_path / "i", images[:, :27], gz=False), write_idx(tmp_path / "l", labels, gz=False)
        )
    with pytest.raises(DataError, match="4 images but 3 labels"):
        read_mnist_pair(write_idx(tmp_path / "i", images, gz=False), write_idx(tmp_path / "l", labels[:3], gz=False))
    with pytest.raises(DataError, match="digits 0..9"):
        read_mnist_pair(write_idx(tmp_path / "i", images, gz=False), write_idx(tmp_path / "l", labels + 10, gz=False))


def write_mnist(folder: Path, part: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uncompressed copies: accepted without a checksum (none is published for them)."""
    stem = "train" if part == "train" else "t10k"
    images, labels = digits(n, seed)
    write_idx(folder / f"{stem}-images-idx3-ubyte", images, gz=False)
    write_idx(folder / f"{stem}-labels-idx1-ubyte", labels, gz=False)
    return images, labels


def test_mnist_and_mnist_test_through_the_registry(tmp_path):
    train = write_mnist(tmp_path / "mnist", "train", 60000, 1)
    test = write_mnist(tmp_path / "mnist", "test", 10000, 2)
    ds = load_dataset("mnist", tmp_path)
    assert ds.x.shape == (70000, 1, 28, 28) and ds.x.dtype == np.float32 and ds.num_classes == 10
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    assert np.array_equal(ds.parts["train"], np.arange(60000)) and np.array_equal(
        ds.parts["test"], np.arange(60000, 70000)
    )
    assert np.array_equal(ds.x[60000, 0], test[0][0] / np.float32(255)) and np.array_equal(ds.y[:60000], train[1])
    small = load_dataset("mnist-test", tmp_path)
    assert small.x.shape == (10000, 1, 28, 28) and np.array_equal(small.y, test[1])


def test_wrong_record_count_is_refused(tmp_path):
    write_mnist(tmp_path / "mnist", "test", 100, 0)
    with pytest.raises(DataError, match="hold 100 records, MNIST has 10000"):
        load_dataset("mnist-test", tmp_path)


def test_mnist_without_training_files_suggests_mnist_test(tmp_path):
    write_mnist(tmp_path / "mnist", "test", 10, 0)
    with pytest.raises(DataMissingError) as err:
        load_dataset("mnist", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert "t10k" not in msg and str(tmp_path / "mnist") in msg and "'mnist-test'" in msg
