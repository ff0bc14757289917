"""Scale-out executors: a local Ray instance (2 CPUs) and a local process pool train the same
models, bit for bit, as the ModelBank in this process, into the same content-addressed cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

from miaudit.errors import ConfigError, UnknownNameError
from miaudit.models import ArchConfig, ModelCache, TrainingRecipe, train_bank
from miaudit.models.executors import executor_from_options

ray = pytest.importorskip("ray")  # in the test extra: `make install` installs it, so CI runs this

ARCH = ArchConfig("mlp", {"hidden": [16], "activation": "tanh"})
RECIPE = TrainingRecipe(epochs=3, batch_size=32)


@pytest.fixture(scope="module")
def ray_executor():
    """One small local Ray instance for the module (start-up is the slow part)."""
    if ray.is_initialized():
        ray.shutdown()
    executor = executor_from_options("ray", workers=2)
    yield executor
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(240, 12)).astype(np.float32)
    y = rng.integers(0, 4, size=240)
    subsets = [np.sort(rng.choice(240, 120, replace=False)) for _ in range(5)]
    return x, y, subsets, [11, 12, 13, 14, 15]


def _states(bank) -> list[dict[str, torch.Tensor]]:
    return [m.module.state_dict() if hasattr(m, "module") else m.state_dict() for m in bank]


def _train(data, tmp_path, name, executor=None):
    x, y, subsets, seeds = data
    cache = ModelCache(tmp_path / name)
    bank = train_bank(ARCH, RECIPE, x, y, subsets, seeds, num_classes=4, cache=cache,
                      max_models_per_pass=2, progress=False, executor=executor)  # fmt: skip
    return bank, cache


def _same(a, b) -> bool:
    return all(torch.equal(sa[k], sb[k]) for sa, sb in zip(_states(a), _states(b)) for k in sa)


def test_ray_executor_gives_the_local_models_bit_for_bit_and_fills_the_cache(ray_executor, data, tmp_path):
    local, local_cache = _train(data, tmp_path, "local")
    remote, remote_cache = _train(data, tmp_path, "ray", ray_executor)
    assert remote_cache.saves == 5 and len(remote) == 5
    assert _same(local, remote)
    x = data[0]
    assert np.array_equal(local.predict_proba_all(x), remote.predict_proba_all(x))
    # The same keys, metadata and tensors: the cache does not know where a model was trained.
    local_files = sorted(p.relative_to(local_cache.root) for p in local_cache.root.rglob("*.safetensors"))
    remote_files = sorted(p.relative_to(remote_cache.root) for p in remote_cache.root.rglob("*.safetensors"))
    assert local_files == remote_files and len(local_files) == 5
    for f in local_files:
        with safe_open(str(local_cache.root / f), "pt") as a, safe_open(str(remote_cache.root / f), "pt") as b:
            assert a.metadata() == b.metadata()
            assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    # A second call finds every model in the cache and ships nothing.
    again, cache2 = _train(data, tmp_path, "ray", ray_executor)
    assert cache2.saves == 0 and cache2.loads == 5 and _same(again, local)


def test_audit_on_ray_gives_the_local_scores(ray_executor, tmp_path):
    from miaudit.experiments import AuditConfig, run_audit
    from miaudit.data.split import SplitSizes

    config = AuditConfig(
        dataset="digits", model="mlp", model_options={"hidden": [16]}, recipe={"epochs": 3},
        split=SplitSizes(120, 120, 240, 0), attacks=("loss", "lira"), n_shadow_models=4, n_bootstrap=0,
    )  # fmt: skip
    local = run_audit(AuditConfig(**{**config.__dict__, "cache_dir": str(tmp_path / "a")}), progress=False)
    remote = run_audit(AuditConfig(**{**config.__dict__, "cache_dir": str(tmp_path / "b")}), progress=False, executor=ray_executor)
    for lo, re in zip(local.outcomes, remote.outcomes, strict=True):
        assert lo.result.attack == re.result.attack
        assert np.array_equal(lo.result.scores, re.result.scores)
        assert lo.metrics.auc == re.metrics.auc


def test_process_pool_gives_the_local_models(data, tmp_path):
    local, _ = _train(data, tmp_path, "local")
    pooled, cache = _train(data, tmp_path, "pool", executor_from_options("process", workers=1))  # one spawn: start-up is the cost
    assert cache.saves == 5 and _same(local, pooled)


@pytest.mark.parametrize(
    "name, kwargs, error, fragment",
    [
        ("cloud", {}, UnknownNameError, "unknown executor 'cloud'"),
        ("local", {"ray_address": "auto"}, ConfigError, "add --executor ray"),
        ("local", {"workers": 2}, ConfigError, "--workers applies"),
        ("process", {"workers": 0}, ConfigError, "workers must be a positive integer"),
        ("ray", {"ray_address": "ray://127.0.0.1:1", "workers": 2}, ConfigError, "has its own CPUs"),
        ("ray", {"ray_address": "127.0.0.1:1"}, ConfigError, "cannot reach the Ray cluster"),
        ("ray", {"ray_address": "head-without-port"}, ConfigError, "is not HOST:PORT"),
    ],
)
def test_bad_executor_options(name, kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        executor_from_options(name, **kwargs)
