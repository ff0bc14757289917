"""The Location30 presets' opt-in authors' split (``reproduce --authors-split``): the authors' one
fixed shuffle (``reference/memguard-location30/shuffle_index.npz`` in the shared data folder, see
its README) gives the members, the evaluated non-members, the defender's records and the one
shadow model's members and non-members; the random split per seed stays the default."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import miaudit.attacks.shadow_models as shadow_models
from miaudit.data.split import index_file_split
from miaudit.errors import ConfigError
from miaudit.experiments.audit import AuditConfig, prepare_audit, run_attack
from miaudit.experiments.presets import PRESETS

SHUFFLE = Path("reference") / "memguard-location30" / "shuffle_index.npz"


@pytest.fixture(scope="module")
def shuffle() -> np.ndarray:
    data_dir = os.environ.get("MIAUDIT_DATA_DIR")
    path = Path(data_dir or "/nonexistent") / SHUFFLE
    if not path.is_file():
        pytest.skip("the authors' shuffle_index.npz is not in MIAUDIT_DATA_DIR/reference/memguard-location30/")
    return np.load(path, allow_pickle=False)["x"]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(np.sort(a), np.sort(b))


def test_the_authors_indices_are_the_split_and_the_shadow_members(shuffle, tmp_path, monkeypatch) -> None:
    for name, population in (("song-mittal-location30", shuffle[:0]), ("memguard-location30", shuffle[1000:2000])):
        fixed = PRESETS.get(name).load_authors_split()
        split = fixed.split(5010, seed=7)
        assert _same(split.target_in, shuffle[0:1000]) and _same(split.target_out, shuffle[2000:3000])
        assert _same(split.attacker_pool, np.concatenate([shuffle[3000:3500], shuffle[4000:4500]]))
        assert _same(split.population, population)
        (subset,) = fixed.shadow_subsets
        assert _same(split.attacker_pool[subset], shuffle[3000:3500])

    # Through the audit: the target trains on the authors' members, the one shadow model on theirs.
    p = PRESETS.get("song-mittal-location30")
    config = p.config(3, attacks=("nn",), epochs=1, cache_dir=str(tmp_path), fixed_split=p.load_authors_split())
    setup = prepare_audit(config, progress=False)
    try:
        assert _same(setup.split.target_in, shuffle[0:1000]) and _same(setup.split.target_out, shuffle[2000:3000])
        assert _same(setup.dataset.y[setup.record_indices[setup.is_member]], setup.dataset.y[shuffle[0:1000]])
        seen: list[np.ndarray] = []

        class Stop(Exception):
            pass

        def capture(spec, x, y, subsets, seeds, **kwargs):
            seen.extend(np.asarray(s) for s in subsets)
            raise Stop

        monkeypatch.setattr(shadow_models, "train_models", capture)
        with pytest.raises(Stop):
            run_attack(setup, "nn")
        (subset,) = seen
        pool = setup.split.attacker_pool
        assert _same(pool[subset], shuffle[3000:3500])
        assert _same(np.setdiff1d(pool, pool[subset]), shuffle[4000:4500])
    finally:
        setup.close()


def test_the_random_split_stays_the_default() -> None:
    for name in ("song-mittal-location30", "memguard-location30"):
        assert PRESETS.get(name).config(0, attacks=()).fixed_split is None
    with pytest.raises(ConfigError, match="fixed_split must be a miaudit.data.split.FixedSplit, got list"):
        AuditConfig(dataset="location30", fixed_split=[0, 1])


def test_a_missing_index_file_is_one_config_error_naming_it(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"shuffle_index\.npz not found"):
        PRESETS.get("memguard-location30").load_authors_split(str(tmp_path))
    (tmp_path / "data").mkdir()
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "miaudit", "reproduce", "memguard-location30", "--authors-split",
         "--data-dir", str(tmp_path / "data"), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "shuffle_index.npz not found" in lines[0], proc.stderr
    assert not out.exists()


def test_index_files_that_are_not_a_plain_permutation_are_refused(tmp_path) -> None:
    parts = {"target_in": ((0, 3),), "target_out": ((3, 6),), "attacker_pool": ((6, 10),)}
    good = tmp_path / "good.npz"
    np.savez(good, x=np.arange(10)[::-1].copy())
    fixed = index_file_split(good, key="x", n_records=10, parts=parts, shadow_members=((6, 8),))
    assert list(fixed.target_in) == [7, 8, 9] and list(fixed.attacker_pool[fixed.shadow_subsets[0]]) == [2, 3]
    with pytest.raises(ConfigError, match="the split is for 10 records, the data set has 11"):
        fixed.split(11, seed=0)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([object()] * 10, dtype=object))
    repeated = tmp_path / "repeated.npz"
    np.savez(repeated, x=np.zeros(10, dtype=np.int64))
    for path, message in ((pickled, "cannot be read as a plain .npz"), (repeated, "not a permutation of the 10")):
        with pytest.raises(ConfigError, match=message):
            index_file_split(path, key="x", n_records=10, parts=parts)
    with pytest.raises(ConfigError, match="has no array 'y'"):
        index_file_split(good, key="y", n_records=10, parts=parts)
    with pytest.raises(ConfigError, match="overlap"):
        index_file_split(good, key="x", n_records=10, parts={**parts, "population": ((2, 4),)})
    with pytest.raises(ConfigError, match="not all in the attacker's pool"):
        index_file_split(good, key="x", n_records=10, parts=parts, shadow_members=((0, 2),))
