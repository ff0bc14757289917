"""The real data sets in the shared data folder ($MIAUDIT_DATA_DIR; `make test` sets it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from miaudit.data import load_dataset, verify_dataset
from miaudit.errors import DataMissingError
from miaudit.io_utils import sha256_file

# Published in the shared data README.
LOCATION_SHA = "927203f85a868f8ee17a0ded1dc61699efe602167beabe34fbf45b4b1de94b33"
CIFAR_JPEG_SHA = "8bc2758c055c63d7f288bc35df41fb4261f8bd797b963082d8c0d33a182bcad2"
MNIST_TEST_SHA = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def require(real_data_dir: Path, *parts: str) -> Path:
    path = real_data_dir.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not in the shared data folder")
    return path


def test_location30(real_data_dir):
    archive = require(real_data_dir, "location30", "dataset_location.tgz")
    assert sha256_file(archive) == LOCATION_SHA
    assert [r.status for r in verify_dataset("location30", real_data_dir)] == ["ok"]
    ds = load_dataset("location30", real_data_dir, download=False)
    assert ds.x.shape == (5010, 446) and ds.num_classes == 30
    assert set(np.unique(ds.x)) == {0.0, 1.0}
    counts = np.bincount(ds.y, minlength=30)
    assert len(counts) == 30 and counts.min() > 0 and counts.sum() == 5010
    assert counts[7] == 308  # label "8", the largest class


def test_mnist_test_files(real_data_dir):
    folder = require(real_data_dir, "mnist")
    for name, digest in MNIST_TEST_SHA.items():
        assert sha256_file(folder / name) == digest
    ds = load_dataset("mnist-test", real_data_dir, download=False)
    assert ds.x.shape == (10000, 1, 28, 28) and ds.num_classes == 10
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert np.array_equal(np.unique(ds.y), np.arange(10)) and list(ds.parts) == ["test"]
    with pytest.raises(DataMissingError, match="train-images-idx3-ubyte.gz .*'mnist-test'"):
        load_dataset("mnist", real_data_dir, download=False)


def test_cifar10_image_archive(real_data_dir):
    archive = require(real_data_dir, "cifar10", "cifar10-jpeg.tar.gz")
    assert sha256_file(archive) == CIFAR_JPEG_SHA
    assert [(r.name, r.status) for r in verify_dataset("cifar10", real_data_dir)] == [("cifar10-jpeg.tar.gz", "ok")]
    ds = load_dataset("cifar10", real_data_dir, download=False)
    assert ds.x.shape == (60000, 3, 32, 32) and ds.x.dtype == np.float32 and ds.num_classes == 10
    assert ds.class_names[0] == "airplane" and ds.class_names[-1] == "truck"
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    train, test = ds.parts["train"], ds.parts["test"]
    assert len(train) == 50000 and len(test) == 10000
    assert np.array_equal(np.bincount(ds.y[train]), [5000] * 10)
    assert np.array_equal(np.bincount(ds.y[test]), [1000] * 10)
    fingerprint = ds.fingerprint
    del ds  # 737 MB of floats; do not hold two copies
    cached = list((Path(os.environ["MIAUDIT_CACHE_DIR"]) / "datasets").glob("cifar10-*/x_train.npy"))
    assert len(cached) == 1
    again = load_dataset("cifar10", real_data_dir, download=False)  # now from the decode cache
    assert again.fingerprint == fingerprint
