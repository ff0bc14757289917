"""The model cache: safetensors with metadata, keys that change with every input, damage detected."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from miaudit.errors import CacheError
from miaudit.models import ArchConfig, ModelBank, ModelCache, ModelKey, TrainingRecipe, fit_classifier

ARCH = ArchConfig.of("mlp", hidden=(8,))
RECIPE = TrainingRecipe(lr=1e-2, epochs=1, batch_size=16)


def _key(**changes) -> ModelKey:  # type: ignore[no-untyped-def]
    args = dict(
        arch=ARCH, recipe=RECIPE, seed=0, num_classes=3, input_shape=(6,),
        data_fingerprint="abc", train_indices=np.arange(10),
    )  # fmt: skip
    args.update(changes)
    return ModelKey.build(**args)


def test_every_key_input_changes_the_key() -> None:
    base = _key().digest
    variants = [
        _key(seed=1),
        _key(recipe=replace(RECIPE, lr=2e-2)),
        _key(recipe=replace(RECIPE, epochs=2)),
        _key(train_indices=np.arange(1, 11)),
        _key(train_indices=np.arange(10)[::-1].copy()),
        _key(data_fingerprint="abd"),
        _key(arch=ArchConfig.of("mlp", hidden=(9,))),
        _key(num_classes=4),
        _key(input_shape=(1, 6)),
    ]
    digests = [v.digest for v in variants]
    assert base not in digests and len(set(digests)) == len(digests)
    # Spelling out a default option, or passing ints for floats, does not change the key.
    assert _key(arch=ArchConfig.of("mlp", hidden=[8], activation="tanh")).digest == base
    assert _key(recipe=replace(RECIPE, weight_decay=0)).digest == base


def _train_cached(tmp_path: Path) -> tuple[ModelCache, ModelKey, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6), dtype=np.float32), rng.integers(0, 3, 40)
    cache = ModelCache(tmp_path / "models")
    ModelBank(ARCH, RECIPE, num_classes=3, cache=cache).train(x, y, [np.arange(30)], [0], data_fingerprint="fp")
    key = ModelKey.build(
        arch=ARCH, recipe=RECIPE, seed=0, num_classes=3, input_shape=(6,), data_fingerprint="fp", train_indices=np.arange(30)
    )
    assert key in cache
    return cache, key, x, y


def test_files_are_safetensors_with_metadata_and_never_pickles(tmp_path: Path) -> None:
    cache, key, _, _ = _train_cached(tmp_path)
    files = [p for p in (tmp_path / "models").rglob("*") if p.is_file()]
    assert files == [cache.path(key)]
    assert all(p.suffix == ".safetensors" for p in files)
    assert not any(p.read_bytes()[:2] == b"\x80\x04" for p in files)  # pickle protocol 4 magic
    with safe_open(str(cache.path(key)), framework="pt") as f:
        meta = f.metadata()
    assert meta["key"] == key.digest
    inputs = json.loads(meta["inputs"])
    assert inputs["seed"] == 0 and inputs["data_fingerprint"] == "fp" and inputs["recipe"]["lr"] == RECIPE.lr
    assert set(cache.load(key)) == {"1.weight", "1.bias", "3.weight", "3.bias"}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_weight_byte"])
def test_damaged_file_raises_cache_error(tmp_path: Path, damage: str) -> None:
    cache, key, x, y = _train_cached(tmp_path)
    path = cache.path(key)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not a safetensors file at all")
    else:
        data[-5] ^= 0xFF  # inside the last tensor's bytes: only the checksum notices
    path.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="delete the file"):
        cache.load(key)
    with pytest.raises(CacheError):
        ModelBank(ARCH, RECIPE, num_classes=3, cache=cache).train(x, y, [np.arange(30)], [0], data_fingerprint="fp")


def test_file_of_another_key_raises_cache_error(tmp_path: Path) -> None:
    cache, key, _, _ = _train_cached(tmp_path)
    other = _key(seed=99)
    cache.path(other).parent.mkdir(parents=True, exist_ok=True)
    cache.path(key).rename(cache.path(other))  # a file under the wrong name
    with pytest.raises(CacheError, match="delete the file"):
        cache.load(other)


def test_fit_classifier_uses_the_cache(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6), dtype=np.float32), rng.integers(0, 3, 40)
    cache = ModelCache(tmp_path / "models")
    kwargs = dict(num_classes=3, seed=1, recipe=RECIPE, options={"hidden": [8]}, cache=cache, train_indices=np.arange(20), progress=False)
    a = fit_classifier("mlp", x, y, **kwargs)
    b = fit_classifier("mlp", x, y, **kwargs)
    assert cache.saves == 1 and cache.loads == 1
    np.testing.assert_array_equal(a.predict_logits(x), b.predict_logits(x))


def test_default_root_is_under_the_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIAUDIT_CACHE_DIR", str(tmp_path / "c"))
    assert ModelCache().root == tmp_path / "c" / "models"
    assert torch.get_default_dtype() == torch.float32


def test_init_and_step_schedule_are_part_of_the_key() -> None:
    base = _key().digest
    glorot = _key(arch=ArchConfig.of("mlp", hidden=(8,), init="glorot_uniform")).digest
    step = TrainingRecipe(lr=1e-2, epochs=1, batch_size=16, schedule="step", milestones=(150,))
    digests = {
        base,
        glorot,
        _key(recipe=step).digest,
        _key(recipe=replace(step, milestones=(100,))).digest,
        _key(recipe=replace(step, gamma=0.5)).digest,
    }
    assert len(digests) == 5
    # The default init, spelt out, keeps the key models were cached under before the option existed.
    assert _key(arch=ArchConfig.of("mlp", hidden=(8,), init="torch")).digest == base
    assert "init" not in _key().inputs["arch"]["options"]
    assert set(_key().inputs["recipe"]) == {"optimizer", "lr", "momentum", "weight_decay", "epochs", "batch_size", "schedule"}
