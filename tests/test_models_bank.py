"""ModelBank reproduces train_one model by model, resumes from its cache, and is deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from miaudit.models import (
    ArchConfig,
    BankProgress,
    ModelBank,
    ModelCache,
    TrainingRecipe,
    train_bank,
    train_one,
)
from miaudit.models.architectures import build_module
from miaudit.models.classifier import BankClassifiers, TorchClassifier

NUM_CLASSES = 4
MLP = ArchConfig.of("mlp", hidden=(16, 8), activation="tanh")
CNN = ArchConfig.of("cnn", channels=(3, 4), hidden=(8,))
RESNET = ArchConfig.of("resnet", widths=(4, 8), blocks=1)  # batch norm: each model's running statistics its own


def _data(shape: tuple[int, ...], n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, n)
    return x, y


def _subsets(n: int, sizes: tuple[int, ...], seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(n, size, replace=False) for size in sizes]


def _max_param_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def _assert_same_models(a: list[torch.nn.Module], b: list[torch.nn.Module], exact: bool = False) -> None:
    assert len(a) == len(b)
    for ma, mb in zip(a, b, strict=True):
        for ta, tb in zip(ma.state_dict().values(), mb.state_dict().values(), strict=True):
            if exact:
                assert torch.equal(ta, tb)
            else:
                torch.testing.assert_close(ta, tb, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("arch", "shape", "recipe"),
    [
        (MLP, (12,), TrainingRecipe(optimizer="adam", lr=1e-2, epochs=3, batch_size=16)),
        (MLP, (12,), TrainingRecipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3, epochs=3, batch_size=16, schedule="cosine")),
        (ArchConfig.of("mlp", hidden=(), activation="relu"), (12,), TrainingRecipe(lr=1e-2, epochs=2, batch_size=8)),
        (ArchConfig.of("mlp", hidden=(8,), activation="relu"), (1, 8, 8), TrainingRecipe(lr=1e-2, epochs=2, batch_size=8, weight_decay=1e-2)),
        (CNN, (1, 8, 8), TrainingRecipe(optimizer="adam", lr=1e-2, epochs=2, batch_size=16)),
        (CNN, (1, 8, 8), TrainingRecipe(optimizer="sgd", lr=0.05, epochs=2, batch_size=16, schedule="cosine")),
        (RESNET, (3, 8, 8), TrainingRecipe(optimizer="adam", lr=1e-2, epochs=2, batch_size=16)),
        (RESNET, (3, 8, 8), TrainingRecipe(optimizer="sgd", lr=0.05, momentum=0.9, epochs=2, batch_size=16, augment="flip-crop")),
    ],
    ids=["mlp-adam", "mlp-sgd-cosine", "mlp-linear-relu", "mlp-images", "cnn-adam", "cnn-sgd", "resnet-adam", "resnet-sgd-augmented"],
)
def test_bank_equals_train_one_with_unequal_subsets(arch: ArchConfig, shape: tuple[int, ...], recipe: TrainingRecipe) -> None:
    x, y = _data(shape)
    # Unequal sizes: different steps per epoch, short last batches, one model smaller than a batch.
    subsets = _subsets(len(x), (60, 47, 33, 60, 5))
    seeds = [11, 12, 13, 14, 15]
    bank = ModelBank(arch, recipe, num_classes=NUM_CLASSES, max_models_per_pass=4)
    models = bank.train(x, y, subsets, seeds)
    assert bank.trained == len(subsets)
    xt = torch.from_numpy(x)
    for model, subset, seed in zip(models, subsets, seeds, strict=True):
        ref = train_one(arch, recipe, x[subset], y[subset], num_classes=NUM_CLASSES, seed=seed)
        assert _max_param_diff(model, ref) < 1e-5
        with torch.no_grad():
            torch.testing.assert_close(model(xt), ref(xt), rtol=0, atol=1e-5)


@pytest.mark.parametrize("density", [0.1, 0.5], ids=["sparse-binary", "dense-binary"])
def test_bank_equals_train_one_on_binary_features(density: float) -> None:
    """0/1 features take the uint8 batch path, and below 30% density the sparse first layer.

    Adam's update g / (sqrt(v) + eps) amplifies rounding differences ~lr/eps-fold where |g| is
    near eps, so the comparison uses the Location30 learning rate (1e-3), not a large one.
    """
    rng = np.random.default_rng(2)
    x = (rng.random((150, 37)) < density).astype(np.float32)
    x[7] = 0.0  # a record without any feature: an empty bag in the sparse forward
    y = rng.integers(0, NUM_CLASSES, 150)
    subsets = _subsets(len(x), (80, 61, 7))
    subsets[2][0] = 7
    recipe = TrainingRecipe(lr=1e-3, epochs=4, batch_size=16)
    for arch in (ArchConfig("mlp"), ArchConfig.of("mlp", hidden=(), activation="relu")):
        models = ModelBank(arch, recipe, num_classes=NUM_CLASSES).train(x, y, subsets, [1, 2, 3])
        for model, subset, seed in zip(models, subsets, [1, 2, 3], strict=True):
            ref = train_one(arch, recipe, x[subset], y[subset], num_classes=NUM_CLASSES, seed=seed)
            assert _max_param_diff(model, ref) < 1e-5


def test_sparse_input_matches_dense_matmul() -> None:
    from miaudit.models.sparse_input import SparseBinaryInput, is_sparse_binary

    rng = np.random.default_rng(3)
    x = torch.from_numpy((rng.random((40, 16)) < 0.2).astype(np.float32))
    x[3] = 0.0
    assert is_sparse_binary(x) and not is_sparse_binary(x * 2) and not is_sparse_binary(torch.ones(4, 4))
    k, b, width = 3, 5, 8
    sparse = SparseBinaryInput(x, k, b, stride=16)
    idx = torch.randint(0, 40, (4, k, b))
    idx[0, 0, 0] = 3
    sparse.begin_epoch(idx)
    table = torch.randn(k * 16, width)
    for step in range(4):
        for rows in (1, k):
            got = sparse.forward(step, rows, table).view(rows, b, width)
            want = torch.bmm(x[idx[step, :rows]], table.view(k, 16, width)[:rows])
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_train_one_is_deterministic_per_seed() -> None:
    x, y = _data((12,))
    recipe = TrainingRecipe(lr=1e-2, epochs=2, batch_size=16)
    a = train_one(MLP, recipe, x, y, num_classes=NUM_CLASSES, seed=3)
    b = train_one(MLP, recipe, x, y, num_classes=NUM_CLASSES, seed=3)
    c = train_one(MLP, recipe, x, y, num_classes=NUM_CLASSES, seed=4)
    _assert_same_models([a], [b], exact=True)
    assert _max_param_diff(a, c) > 1e-3


def test_bank_is_deterministic_and_independent_of_chunking() -> None:
    x, y = _data((12,))
    recipe = TrainingRecipe(lr=1e-2, epochs=2, batch_size=16)
    subsets, seeds = _subsets(len(x), (50, 40, 50)), [1, 2, 3]
    a = ModelBank(MLP, recipe, num_classes=NUM_CLASSES).train(x, y, subsets, seeds)
    b = ModelBank(MLP, recipe, num_classes=NUM_CLASSES, max_models_per_pass=1).train(x, y, subsets, seeds)
    _assert_same_models(a, b)
    c = ModelBank(MLP, recipe, num_classes=NUM_CLASSES).train(x, y, subsets, [1, 2, 4])
    assert _max_param_diff(a[2], c[2]) > 1e-3


class _Interrupt(Exception):
    pass


def test_killed_run_resumes_without_retraining_finished_chunks(tmp_path) -> None:
    x, y = _data((12,))
    recipe = TrainingRecipe(lr=1e-2, epochs=3, batch_size=16)
    subsets, seeds = _subsets(len(x), (40, 40, 30, 50)), [5, 6, 7, 8]
    cache = ModelCache(tmp_path / "models")

    def die_in_second_chunk(event: BankProgress) -> None:
        if event.chunk == 1 and event.epoch == 2:
            raise _Interrupt

    first = ModelBank(MLP, recipe, num_classes=NUM_CLASSES, cache=cache, max_models_per_pass=2, progress=die_in_second_chunk)
    with pytest.raises(_Interrupt):
        first.train(x, y, subsets, seeds)
    assert first.trained == 2 and cache.saves == 2

    events: list[BankProgress] = []
    rerun = ModelBank(MLP, recipe, num_classes=NUM_CLASSES, cache=ModelCache(tmp_path / "models"), max_models_per_pass=2, progress=events.append)
    resumed = rerun.train(x, y, subsets, seeds)
    assert (rerun.trained, rerun.loaded) == (2, 2)
    assert events[-1].done and events[-1].models_done == 4

    uninterrupted = ModelBank(MLP, recipe, num_classes=NUM_CLASSES, max_models_per_pass=2).train(x, y, subsets, seeds)
    _assert_same_models(resumed, uninterrupted, exact=True)

    again = ModelBank(MLP, recipe, num_classes=NUM_CLASSES, cache=ModelCache(tmp_path / "models"))
    cached = again.train(x, y, subsets, seeds)
    assert (again.trained, again.loaded) == (0, 4)
    _assert_same_models(cached, uninterrupted, exact=True)


def test_train_bank_predicts_all_models_at_once() -> None:
    x, y = _data((1, 8, 8), n=60)
    recipe = TrainingRecipe(lr=1e-2, epochs=1, batch_size=16)
    for arch in (MLP, CNN):
        bank = train_bank(arch, recipe, x, y, _subsets(len(x), (30, 20, 25)), [1, 2, 3], num_classes=NUM_CLASSES, progress=False)
        assert len(bank) == 3
        logits = bank.predict_logits_all(x[:7])
        assert logits.shape == (3, 7, NUM_CLASSES)
        for k, clf in enumerate(bank):
            np.testing.assert_allclose(logits[k], clf.predict_logits(x[:7]), atol=1e-5)
        proba = bank.predict_proba_all(x[:7])
        np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-12)


def test_bank_rejects_bad_inputs() -> None:
    from miaudit.errors import ConfigError, InputError

    x, y = _data((12,))
    bank = ModelBank(MLP, TrainingRecipe(epochs=1), num_classes=NUM_CLASSES)
    with pytest.raises(InputError, match="seeds"):
        bank.train(x, y, _subsets(len(x), (10, 10)), [1])
    with pytest.raises(InputError, match="empty"):
        bank.train(x, y, [np.array([], dtype=np.int64)], [1])
    with pytest.raises(InputError, match=r"\[0, 120\)"):
        bank.train(x, y, [np.array([0, 500])], [1])
    with pytest.raises(InputError, match="labels"):
        bank.train(x, y + NUM_CLASSES, _subsets(len(x), (10,)), [1])
    with pytest.raises(ConfigError, match="cnn needs images"):
        ModelBank(CNN, TrainingRecipe(epochs=1), num_classes=NUM_CLASSES).train(x, y, _subsets(len(x), (10,)), [1])


def test_adam_without_the_fused_kernel_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tensor-op Adam used where torch lacks the fused CPU kernel gives the same models."""
    import miaudit.models.optim as optim

    x, y = _data((12,))
    recipe = TrainingRecipe(lr=1e-3, epochs=2, batch_size=16, weight_decay=1e-4)
    subsets, seeds = _subsets(len(x), (50, 35)), [1, 2]
    fused = ModelBank(MLP, recipe, num_classes=NUM_CLASSES).train(x, y, subsets, seeds)
    monkeypatch.setattr(optim, "_FUSED_ADAM", False)
    plain = ModelBank(MLP, recipe, num_classes=NUM_CLASSES).train(x, y, subsets, seeds)
    _assert_same_models(fused, plain)


def test_rich_progress_bar_runs() -> None:
    x, y = _data((12,))
    bank = ModelBank(MLP, TrainingRecipe(epochs=1, batch_size=32), num_classes=NUM_CLASSES, progress=True)
    assert len(bank.train(x, y, _subsets(len(x), (40, 30)), [1, 2])) == 2


# The Location30 recipe of Jia et al. (CCS 2019) / Song & Mittal (USENIX Security 2021), in small:
# a ReLU MLP with Glorot-uniform weights and zero biases, plain SGD, lr x0.1 at a milestone.
GLOROT_MLP = ArchConfig.of("mlp", hidden=(16, 8), activation="relu", init="glorot_uniform")
STEP_SGD = TrainingRecipe(optimizer="sgd", lr=0.05, momentum=0, epochs=5, batch_size=16, schedule="step", milestones=(2, 4), gamma=0.1)


@pytest.mark.parametrize("binary", [False, True], ids=["dense-float", "sparse-binary"])
def test_bank_equals_train_one_with_glorot_init_step_schedule_and_plain_sgd(binary: bool) -> None:
    rng = np.random.default_rng(5)
    x = (rng.random((120, 12)) < 0.2).astype(np.float32) if binary else rng.random((120, 12), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, 120)
    subsets, seeds = _subsets(len(x), (60, 47, 5)), [21, 22, 23]
    models = ModelBank(GLOROT_MLP, STEP_SGD, num_classes=NUM_CLASSES, max_models_per_pass=2).train(x, y, subsets, seeds)
    xt = torch.from_numpy(x)
    for model, subset, seed in zip(models, subsets, seeds, strict=True):
        ref = train_one(GLOROT_MLP, STEP_SGD, x[subset], y[subset], num_classes=NUM_CLASSES, seed=seed)
        assert _max_param_diff(model, ref) < 1e-5
        with torch.no_grad():
            torch.testing.assert_close(model(xt), ref(xt), rtol=0, atol=1e-5)
    # The schedule and the init matter: without the decay, or with torch's init, the models differ.
    no_decay = TrainingRecipe(optimizer="sgd", lr=0.05, momentum=0, epochs=5, batch_size=16)
    other = train_one(GLOROT_MLP, no_decay, x[subsets[0]], y[subsets[0]], num_classes=NUM_CLASSES, seed=seeds[0])
    assert _max_param_diff(models[0], other) > 1e-4
    torch_init = ArchConfig.of("mlp", hidden=(16, 8), activation="relu")
    other = train_one(torch_init, STEP_SGD, x[subsets[0]], y[subsets[0]], num_classes=NUM_CLASSES, seed=seeds[0])
    assert _max_param_diff(models[0], other) > 1e-3


def test_sgd_with_zero_momentum_is_plain_sgd_in_the_bank_and_in_train_one() -> None:
    """momentum=0 keeps no buffer: each step is p -= lr * grad, checked on one step by hand."""
    from miaudit.models.optim import OPTIMIZERS
    from miaudit.models.train import new_model

    recipe = TrainingRecipe(optimizer="sgd", lr=0.05, momentum=0, epochs=1, batch_size=64)
    stacked = OPTIMIZERS.get("sgd").stacked([torch.zeros(2, 3)], recipe, [(0, 2)])
    assert stacked.buffers == []
    x, y = _data((12,), n=20)  # one batch: a single step
    model = train_one(GLOROT_MLP, recipe, x, y, num_classes=NUM_CLASSES, seed=9)
    start = new_model(GLOROT_MLP, (12,), NUM_CLASSES, seed=9)
    loss = torch.nn.functional.cross_entropy(start(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    with torch.no_grad():
        for p, trained in zip(start.parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(trained, p - 0.05 * p.grad, rtol=0, atol=1e-7)
    (banked,) = ModelBank(GLOROT_MLP, recipe, num_classes=NUM_CLASSES).train(x, y, [np.arange(20)], [9])
    assert _max_param_diff(banked, model) < 1e-6


def test_resnet_keeps_each_models_batch_norm_statistics_through_the_cache(tmp_path) -> None:
    """Batch norm's running statistics are buffers: the bank keeps them per model, the cache
    stores them (a second bank trains nothing and gives the same modules bit for bit), and the
    stacked evaluation of BankClassifiers uses each model's own."""
    x, y = _data((3, 8, 8))
    subsets, recipe = _subsets(len(x), (60, 60)), TrainingRecipe(epochs=2, batch_size=16)
    first = ModelBank(RESNET, recipe, num_classes=NUM_CLASSES, cache=ModelCache(tmp_path)).train(x, y, subsets, [1, 2])
    means = [m.state_dict()["1.running_mean"] for m in first]
    assert not torch.equal(means[0], means[1]) and not torch.equal(means[0], torch.zeros_like(means[0]))
    again_bank = ModelBank(RESNET, recipe, num_classes=NUM_CLASSES, cache=ModelCache(tmp_path))
    again = again_bank.train(x, y, subsets, [1, 2])
    assert again_bank.trained == 0
    _assert_same_models(first, again, exact=True)
    stacked = BankClassifiers(first, NUM_CLASSES, (3, 8, 8)).predict_logits_all(x[:9])
    for k, model in enumerate(first):
        np.testing.assert_allclose(stacked[k], TorchClassifier(model, NUM_CLASSES, (3, 8, 8)).predict_logits(x[:9]), atol=1e-5)


def test_resnet_refuses_inputs_it_cannot_take() -> None:
    from miaudit.errors import ConfigError

    x, y = _data((12,))
    with pytest.raises(ConfigError, match="resnet needs images"):
        ModelBank(RESNET, TrainingRecipe(epochs=1), num_classes=NUM_CLASSES).train(x, y, _subsets(len(x), (10,)), [1])
    with pytest.raises(ConfigError, match="at least 4x4"):
        build_module(RESNET, (3, 2, 2), NUM_CLASSES)
    with pytest.raises(ConfigError, match="blocks"):
        ArchConfig.of("resnet", blocks=0).resolved()
