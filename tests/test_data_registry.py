"""The data set registry, the embedded digits set and content fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.data import DATASETS, Dataset, fetch_dataset, list_datasets, load_dataset, load_npz, verify_dataset
from miaudit.errors import UnknownNameError


def test_registered_names_and_metadata():
    names = [s.name for s in list_datasets()]
    assert names == sorted(names)
    assert {"digits", "location30", "purchase100", "texas100", "mnist", "mnist-test", "cifar10"} <= set(names)
    for spec in list_datasets():
        assert spec.description and spec.citation
        assert spec.embedded or spec.files
        for f in spec.files:
            assert f.sha256 is None or len(f.sha256) == 64


def test_checksums_are_only_published_ones():
    no_checksum = {f.name for s in list_datasets() for f in s.files if f.sha256 is None}
    assert no_checksum == {"dataset_purchase.tgz", "dataset_texas.tgz"}
    for name in ("purchase100", "texas100"):
        assert "No checksum" in DATASETS.get(name).description


@pytest.mark.parametrize("call", [load_dataset, fetch_dataset, verify_dataset])
def test_unknown_name(call, tmp_path):
    with pytest.raises(UnknownNameError, match="unknown data set 'cifar11'; choose one of: .*cifar10"):
        call("cifar11", tmp_path)


def test_digits_needs_no_file(tmp_path):
    ds = load_dataset("digits", tmp_path / "does-not-exist", download=False)
    assert ds.x.shape == (1797, 64) and ds.x.dtype == np.float32 and ds.num_classes == 10
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0 and set(np.unique(ds.y)) == set(range(10))
    assert fetch_dataset("digits", tmp_path) == {}
    assert load_dataset("digits").fingerprint == ds.fingerprint


def test_fingerprint_tracks_content(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 3)), rng.integers(0, 4, 20)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    np.savez(tmp_path / "b.npz", x=x, y=y)
    flipped = y.copy()
    flipped[7] = (flipped[7] + 1) % 4
    np.savez(tmp_path / "c.npz", x=x, y=flipped)
    a, b, c = (load_npz(tmp_path / f"{n}.npz") for n in "abc")
    assert len(a.fingerprint) == 64 and a.fingerprint == b.fingerprint
    assert c.fingerprint != a.fingerprint
    assert Dataset("other-name", a.x, a.y, 4).fingerprint == a.fingerprint  # content, not name
