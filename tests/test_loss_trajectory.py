"""The loss-trajectory attack (Liu et al., CCS 2022): trajectory shape, what the distilled models
train on, reproducibility, and a memorising torch target caught."""

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, AttackerKnowledge, ModelSpec
from miaudit.attacks import distillation
from miaudit.attacks.loss_trajectory import LossTrajectoryAttack, pool_thirds
from miaudit.metrics import auc as roc_auc
from miaudit.models import TrainingRecipe, fit_classifier
from miaudit.targets.access import TargetAccess
from miaudit.threat import THREAT_MODELS

EPOCHS = 4
CLASSES = 10
# A 256-unit MLP memorising random labels of 32-dimensional random records: members get a loss
# near 0, non-members about log(10); the trajectory's last column alone separates them.
RECIPE = TrainingRecipe(optimizer="adam", lr=3e-3, epochs=40, batch_size=64)
SPEC = ModelSpec("mlp", {"hidden": [256], "activation": "relu"}, RECIPE)
AUC_BAR = 0.85  # measured 0.916 with this seed


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(0)
    n_target, n_pool = 300, 900
    x = rng.random((2 * n_target + n_pool, 32), dtype=np.float32)
    y = rng.integers(0, CLASSES, len(x))
    target = fit_classifier("mlp", x[:n_target], y[:n_target], num_classes=CLASSES, seed=0, recipe=RECIPE, options=SPEC.options)
    evaluated = np.arange(2 * n_target)
    is_member = evaluated < n_target
    pool = np.arange(2 * n_target, len(x))
    knowledge = AttackerKnowledge.under(
        THREAT_MODELS.get("gray-box"), num_classes=CLASSES, input_shape=(32,), seed=1,
        pool_x=x[pool], pool_y=y[pool], pool_fingerprint="pool", target_model=SPEC,
    )  # fmt: skip
    return x, y, target, evaluated, is_member, knowledge


def _run(setting):
    x, y, target, evaluated, _, knowledge = setting
    attack = LossTrajectoryAttack(epochs=EPOCHS, max_epochs=15).fit(knowledge)
    access = TargetAccess(target, THREAT_MODELS.get("gray-box"), input_shape=(32,))
    return attack.score(access, x[evaluated], y[evaluated]), access


def test_registered_gray_box():
    assert ATTACKS.get("loss-trajectory") is LossTrajectoryAttack
    assert LossTrajectoryAttack.requirements.architecture and LossTrajectoryAttack.requirements.training_recipe


def test_pool_thirds_are_disjoint_and_cover_the_pool():
    parts = pool_thirds(100, seed=3)
    assert sum(len(p) for p in parts) == 100
    assert len(np.unique(np.concatenate(parts))) == 100
    assert [len(p) for p in parts] == [33, 33, 34]


def test_trajectories_have_one_loss_per_epoch_and_train_only_on_the_distillation_set(setting, monkeypatch):
    x, y, _, evaluated, _, knowledge = setting
    calls = []
    real = distillation.distil_trajectories

    def spy(arch, recipe, x_distill, soft_labels, traced, **kw):
        out = real(arch, recipe, x_distill, soft_labels, traced, **kw)
        calls.append((np.array(x_distill), [len(t[1]) for t in traced], [o.shape for o in out]))
        return out

    monkeypatch.setattr(distillation, "distil_trajectories", spy)
    result, access = _run(setting)
    assert len(calls) == 2  # the shadow's student (in fit) and the target's (in score)
    n_eval = len(evaluated)
    assert calls[1][2] == [(n_eval, EPOCHS)]  # + the original loss: records x (E + 1) features
    assert result.scores.shape == (n_eval,)
    evaluated_rows = {r.tobytes() for r in x[evaluated]}
    pool_rows = {r.tobytes() for r in knowledge.pool_x}
    for x_distill, _, _ in calls:
        rows = {r.tobytes() for r in x_distill}
        assert rows <= pool_rows and not rows & evaluated_rows
        assert len(x_distill) == len(knowledge.pool_x) // 3
    # The shadow's traced records are its members and non-members: the other two thirds.
    assert sum(calls[0][1]) == len(knowledge.pool_x) - len(knowledge.pool_x) // 3
    # Queries: the target's soft labels on the distillation set, then one per scored record.
    assert access.queries == len(calls[1][0]) + n_eval


def test_trajectory_features_shape():
    from miaudit.attacks.loss_trajectory import trajectory_features

    proba = np.full((5, 3), 1 / 3)
    feats = trajectory_features(np.zeros((5, EPOCHS)), proba, np.zeros(5, dtype=int))
    assert feats.shape == (5, EPOCHS + 1)
    np.testing.assert_allclose(feats[:, -1], np.log(3))


def test_reproducible_from_the_seed_and_catches_a_memorising_target(setting):
    _, _, _, _, is_member, _ = setting
    first, _ = _run(setting)
    second, _ = _run(setting)
    np.testing.assert_array_equal(first.scores, second.scores)
    auc = roc_auc(first.scores, is_member)
    assert auc >= AUC_BAR, auc
    assert first.details["distillation_epochs"] == EPOCHS and first.details["student"] == "mlp"


def test_a_target_without_a_torch_architecture_distils_into_the_stand_in_mlp():
    from miaudit.attacks.loss_trajectory import student_of

    arch, _, stand_in = student_of(ModelSpec("random_forest", {}, TrainingRecipe()))
    assert stand_in and arch.name == "mlp"
    arch, recipe, stand_in = student_of(SPEC)
    assert not stand_in and arch.name == "mlp" and arch.option_dict()["hidden"] == (256,) and recipe == RECIPE
