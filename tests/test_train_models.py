"""One training entry for the attacker's models (miaudit.attacks.train_models): shadows and
online references are built with the target's defense when the attacker adapts to it."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
from miaudit.attacks.reference_models import train_online_references
from miaudit.attacks.train_models import train_models
from miaudit.defenses import DefendedModel, DefendedOutputs, Defense, TrainingTask, parse_defense
from miaudit.defenses.training import plain_model
from miaudit.models import TrainingRecipe
from miaudit.targets.access import TargetAccess
from miaudit.threat import THREAT_MODELS

MLP = {"hidden": [16], "activation": "relu"}
RECIPE = TrainingRecipe(epochs=2, batch_size=32)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 6), dtype=np.float32), rng.integers(0, 3, n)


def _knowledge(defense: Defense | None, n_models: int = 4) -> AttackerKnowledge:
    pool_x, pool_y = _data(160, 0)
    return AttackerKnowledge(
        threat=THREAT_MODELS.get("gray-box"), num_classes=3, input_shape=(6,), seed=0, pool_x=pool_x, pool_y=pool_y,
        pool_fingerprint="pool", model=ModelSpec("mlp", MLP, RECIPE, defense), n_shadow_models=n_models,
    )  # fmt: skip


class _NeedsReference(Defense):
    """A training-time defense that needs reference data and records every task it is given
    (it trains the plain model: the check is on what it is handed)."""

    name = "needs-reference"
    paper = "test"
    stage = "training"
    needs_reference = True

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[TrainingTask] = []

    def build(self, task: TrainingTask) -> DefendedModel:
        task.reference(self.name)  # disjoint from the private records, not empty
        self.tasks.append(task)
        return DefendedModel(plain_model(task))


def test_online_references_release_what_the_defense_releases():
    rounding = parse_defense("rounding:decimals=1")
    knowledge = _knowledge(rounding)
    x, y = _data(40, 1)
    refs = train_online_references(knowledge, x, y, 4)
    assert all(isinstance(m, DefendedOutputs) and m.defense is rounding for m in refs.models)
    for m in refs.models:
        released = m.predict_proba(x)
        np.testing.assert_allclose(released * 10, np.round(released * 10), atol=1e-9)  # one decimal
        assert not np.allclose(m.base.predict_proba(x), released)  # the base model's outputs are not
    np.testing.assert_array_equal(refs.out_candidates, ~refs.in_candidates)
    undefended = train_online_references(_knowledge(None), x, y, 4)
    assert not any(isinstance(m, DefendedOutputs) for m in undefended.models)


def test_online_lira_and_rmia_score_with_defended_references(monkeypatch):
    import miaudit.attacks.lira as lira
    import miaudit.attacks.rmia as rmia

    seen: dict[str, list] = {}

    def spy(module):
        real = module.train_online_references

        def wrapped(knowledge, x, y, n):
            refs = real(knowledge, x, y, n)
            seen.setdefault(module.__name__, []).append(refs)
            return refs

        monkeypatch.setattr(module, "train_online_references", wrapped)

    spy(lira)
    spy(rmia)
    knowledge = _knowledge(parse_defense("top-k:k=1"))
    target = plain_model(TrainingTask(
        x=knowledge.pool_x, y=knowledge.pool_y, private_idx=np.arange(80), reference_idx=None, num_classes=3,
        seed=5, model="mlp", options=MLP, recipe=RECIPE,
    ))  # fmt: skip
    x, y = _data(30, 2)
    for attack in (lira.LiraAttack(), rmia.RmiaAttack()):
        access = TargetAccess(target, THREAT_MODELS.get("gray-box"), input_shape=(6,))
        result = attack.fit(knowledge).score(access, x, y)
        assert np.isfinite(result.scores).all()
    for name in ("miaudit.attacks.lira", "miaudit.attacks.rmia"):
        (refs,) = seen[name]
        assert all(isinstance(m, DefendedOutputs) for m in refs.models)
        assert all(np.count_nonzero(m.predict_proba(x), axis=1).max() == 1 for m in refs.models)  # top-1 released
    assert seen["miaudit.attacks.lira"][0].models[0] is seen["miaudit.attacks.rmia"][0].models[0]  # shared (memoised)


def test_a_defense_needing_reference_data_gets_it_from_pool_records_only():
    defense = _NeedsReference()
    knowledge = _knowledge(defense)
    x, y = _data(40, 3)
    refs = train_online_references(knowledge, x, y, 4)
    n_pool = len(knowledge.pool_y)
    assert len(defense.tasks) == 4
    for task in defense.tasks:
        assert len(task.x) == n_pool + len(x) and task.reference_idx.max() < n_pool  # never a candidate
        assert abs(len(task.reference_idx) - np.count_nonzero(task.private_idx < n_pool)) <= 1  # half of its pool part
    np.testing.assert_array_equal(refs.out_candidates, ~refs.in_candidates)  # every candidate IN or OUT
    np.testing.assert_array_equal(refs.in_candidates.sum(axis=0), 2)
    assert not (refs.in_pool & refs.out_pool).any() and (~(refs.in_pool | refs.out_pool)).any()  # reference halves: neither

    # Shadows draw the reference half from the whole subset: a quarter of the pool is IN per shadow.
    from miaudit.attacks.shadow_models import train_shadow_models

    shadows = train_shadow_models(knowledge, 2)
    assert [len(s.in_idx) for s in shadows] == [40, 40] and [len(s.out_idx) for s in shadows] == [80, 80]
    again = train_models(knowledge.model, knowledge.pool_x, knowledge.pool_y, [shadows[0].in_idx, shadows[1].in_idx],
                         [7, 7], num_classes=3, data_fingerprint="pool")  # fmt: skip
    assert again[0] is not shadows[0] and again[1] is not again[0]  # memo keyed by subset and seed


def test_training_time_defense_builds_every_reference():
    from miaudit.defenses.weight_decay import WeightDecay

    built: list[TrainingTask] = []

    class Recording(WeightDecay):
        def build(self, task: TrainingTask) -> DefendedModel:
            built.append(task)
            return super().build(task)

    knowledge = _knowledge(Recording(lam=0.5))
    x, y = _data(40, 4)
    refs = train_online_references(knowledge, x, y, 4)
    assert len(built) == 4 and len({t.seed for t in built}) == 4
    assert all(len(t.x) == len(knowledge.pool_y) + len(x) and t.reference_idx is None for t in built)
    plain = train_online_references(_knowledge(None), x, y, 4)
    for defended, undefended in zip(refs.models, plain.models):  # same init and subset, heavier decay: smaller weights
        w_def = np.concatenate([p.detach().numpy().ravel() for p in defended.module.parameters()])
        w_plain = np.concatenate([p.detach().numpy().ravel() for p in undefended.module.parameters()])
        assert np.linalg.norm(w_def) < np.linalg.norm(w_plain)
