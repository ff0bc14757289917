"""The run's torch device (miaudit.models.device): resolution, errors, and the CPU path unchanged."""

import numpy as np
import pytest
import torch

from miaudit.errors import ConfigError
from miaudit.models import ArchConfig, TrainingRecipe, train_one
from miaudit.models.device import cache_tag, current_device, resolve_device, use_device


def test_auto_is_cpu_without_cuda_and_cuda_with_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")


def test_explicit_cpu_trains_the_same_weights_and_keeps_cache_keys():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3, 8, 8)).astype(np.float32), rng.integers(0, 3, 64)
    arch, recipe = ArchConfig.of("cnn", channels=(4,), hidden=(8,)), TrainingRecipe(epochs=2, batch_size=16)
    plain = train_one(arch, recipe, x, y, num_classes=3, seed=1)
    with use_device("cpu"):
        assert current_device().type == "cpu" and cache_tag() == ""
        again = train_one(arch, recipe, x, y, num_classes=3, seed=1)
    for a, b in zip(plain.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_cuda_training_returns_cpu_models_close_to_cpu():  # pragma: no cover - needs a GPU
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3, 8, 8)).astype(np.float32), rng.integers(0, 3, 64)
    arch, recipe = ArchConfig.of("cnn", channels=(4,), hidden=(8,)), TrainingRecipe(epochs=2, batch_size=16)
    cpu = train_one(arch, recipe, x, y, num_classes=3, seed=1)
    with use_device("cuda"):
        gpu = train_one(arch, recipe, x, y, num_classes=3, seed=1)
        assert cache_tag() == "device=cuda"
    for a, b in zip(cpu.parameters(), gpu.parameters(), strict=True):
        assert b.device.type == "cpu" and torch.allclose(a, b, atol=1e-4)
