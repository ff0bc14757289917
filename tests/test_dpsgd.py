"""DP-SGD (miaudit.defenses.dpsgd, dp_tuning) on a small Location30 subset.

What is checked: the recipe recorded in the info is the one that ran (and not the task's
non-private recipe); the achieved epsilon is at most the target; the learning-rate search reads
no record outside the defender's private records; the same seed gives the same model; and at
epsilon 8 the model beats the majority-class rate by a stated margin. Sizes keep the file under a
minute: 600 private records, 600 test records, the data set's default MLP (128 Tanh units);
tests where the accountant is not the point use RDP, whose noise search is faster than PRV's.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from miaudit.data import load_dataset
from miaudit.data.baselines import majority_class_rate
from miaudit.defenses import TrainingTask, parse_defense
from miaudit.defenses import dp_tuning, dpsgd
from miaudit.errors import ConfigError
from miaudit.models import TrainingRecipe

#: The margin by which DP-SGD at epsilon 8 must beat the majority-class rate on this subset
#: (majority rate about 0.07 here; DP-SGD measured about 0.3 on it).
MARGIN_OVER_MAJORITY = 0.10


@pytest.fixture(scope="module")
def small():
    value = os.environ.get("MIAUDIT_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("MIAUDIT_DATA_DIR is not set to the shared data folder (make test sets it)")
    ds = load_dataset("location30", value)
    perm = np.random.default_rng(11).permutation(len(ds.y))
    private, test = np.sort(perm[:600]), np.sort(perm[600:1200])
    task = TrainingTask(
        x=ds.x, y=ds.y, private_idx=private, reference_idx=None, num_classes=ds.num_classes, seed=0,
        model="mlp", options={"hidden": (128,), "activation": "tanh"},
        recipe=TrainingRecipe(optimizer="sgd", lr=1e-4, batch_size=7, epochs=3),  # must not be used
    )  # fmt: skip
    return ds, task, test


def _accuracy(model, x, y):
    return float((np.asarray(model.predict_proba(x)).argmax(axis=1) == y).mean())


def test_the_recorded_recipe_is_the_one_that_ran_not_the_tasks(small, monkeypatch):
    _, task, _ = small
    from miaudit.models import optim, schedules

    ran: dict = {"lrs": [], "optimizers": []}
    real_rate = schedules.learning_rate
    monkeypatch.setattr(schedules, "learning_rate", lambda r, e: ran["lrs"].append(real_rate(r, e)) or ran["lrs"][-1])
    real_get = optim.OPTIMIZERS.get

    def spy_get(name):
        spec = real_get(name)
        return type(spec)(torch=lambda params, r: ran["optimizers"].append(r) or spec.torch(params, r), stacked=spec.stacked)

    monkeypatch.setattr(optim.OPTIMIZERS, "get", spy_get)
    info = parse_defense("dpsgd:epsilon=8,epochs=4,lr=0.02,batch_size=150,accountant=rdp").build(task).info
    (recipe,) = ran["optimizers"]
    assert (info["optimizer"], info["lr"], info["epochs"], info["expected_batch_size"]) == ("adam", 0.02, 4, 150)
    assert (recipe.optimizer, recipe.lr, recipe.epochs, recipe.batch_size) == ("adam", 0.02, 4, 150)
    assert ran["lrs"] == [real_rate(recipe, e) for e in range(4)] and info["schedule"] == recipe.schedule
    assert info["max_grad_norm"] == dpsgd.DP_RECIPE["max_grad_norm"] and info["delta"] == 1e-5
    # Poisson sampling at rate 150/600: Opacus takes 1 / rate = 4 steps an epoch.
    assert info["steps"] == 16 and info["sample_rate"] == pytest.approx(0.25)
    assert info["accountant_history"] == [[pytest.approx(info["noise_multiplier"]), pytest.approx(0.25), 16]]


def test_defaults_are_dp_sgds_own_and_epsilon_is_at_most_the_target(small):
    _, task, _ = small
    defense = parse_defense("dpsgd:epsilon=4,epochs=2")
    assert {k: defense.params[k] for k in dpsgd.DP_RECIPE if k != "epochs"} == {
        k: v for k, v in dpsgd.DP_RECIPE.items() if k != "epochs"
    }
    info = defense.build(task).info
    # Opacus' noise search stops within epsilon_tolerance 0.01 below the target.
    assert 4.0 - 0.05 <= info["epsilon"] <= 4.0 + 1e-9 and info["target_epsilon"] == 4.0
    # The default accountant is PRV, and composing the run's history again gives the same epsilon;
    # RDP on the same history is looser (a larger epsilon for the same noise).
    assert info["accountant"] == dpsgd.DP_ACCOUNTANT == "prv"
    again = dp_tuning.composed_epsilon(info["accountant_history"], 1e-5, "prv")
    assert again == pytest.approx(info["epsilon"], rel=1e-3)
    assert dp_tuning.composed_epsilon(info["accountant_history"], 1e-5, "rdp") > info["epsilon"] + 0.05


def test_the_lr_search_reads_only_the_defenders_private_records(small, monkeypatch):
    ds, task, test = small
    x = np.full_like(ds.x, np.nan, dtype=np.float32)
    y = np.full_like(ds.y, 10_000)  # out of range: cross-entropy fails on any such label
    x[task.private_idx], y[task.private_idx] = ds.x[task.private_idx], ds.y[task.private_idx]
    poisoned = TrainingTask(**{**task.__dict__, "x": x, "y": y})
    seen: list[np.ndarray] = []
    real_train = dpsgd.train_dp
    monkeypatch.setattr(dpsgd, "train_dp", lambda t, p, indices=None: seen.append(indices) or real_train(t, p, indices))
    defended = parse_defense("dpsgd:epsilon=8,epochs=2,tune=true,lr_grid=0.003/0.03,accountant=rdp").build(poisoned)
    tuning = defended.info["tuning"]
    fit, held = dp_tuning.split_private(poisoned, 0.2)
    assert len(seen) == 3 and all(np.array_equal(s, fit) for s in seen[:2]) and seen[2] is None
    assert np.array_equal(np.union1d(fit, held), task.private_idx) and not np.intersect1d(fit, held).size
    best = max(tuning["candidates"], key=lambda c: (c["held_out_accuracy"], -c["lr"]))
    assert tuning["chosen_lr"] == best["lr"] and defended.info["lr"] == tuning["chosen_lr"]
    assert [c["lr"] for c in tuning["candidates"]] == [0.003, 0.03]
    assert (tuning["fit_records"], tuning["held_out_records"]) == (480, 120)
    assert all(np.isfinite(c["held_out_accuracy"]) for c in tuning["candidates"])
    # Three runs composed cost more than the final run alone; the note says what is not covered.
    assert tuning["epsilon_all_runs"] > defended.info["epsilon"] and "not privatised" in tuning["privacy_note"]
    assert np.isfinite(defended.model.predict_proba(ds.x[test[:50]])).all()


def test_lr_grid_and_tune_are_checked():
    with pytest.raises(ConfigError, match="lr_grid"):
        parse_defense("dpsgd:lr_grid=0.1/x")
    with pytest.raises(ConfigError, match="lr_grid"):
        parse_defense("dpsgd:lr_grid=0.1/-1")
    with pytest.raises(ConfigError, match="tune"):
        parse_defense("dpsgd:tune=3")
    assert dp_tuning.parse_lr_grid("0.1/0.5") == (0.1, 0.5) and dp_tuning.parse_lr_grid([1, 2]) == (1.0, 2.0)


def test_same_seed_same_model_other_seed_other_model(small):
    ds, task, test = small
    spec = "dpsgd:epsilon=8,epochs=2,accountant=rdp"
    x = ds.x[test[:100]]
    a = parse_defense(spec).build(task).model.predict_proba(x)
    b = parse_defense(spec).build(task).model.predict_proba(x)
    c = parse_defense(spec).build(TrainingTask(**{**task.__dict__, "seed": 1})).model.predict_proba(x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_dpsgd_at_epsilon_8_beats_the_majority_class_rate(small):
    ds, task, test = small
    defended = parse_defense("dpsgd:epsilon=8").build(task)
    majority = majority_class_rate(ds.y[task.private_idx], ds.y[test])
    assert defended.info["epsilon"] <= 8.0 + 1e-9
    assert _accuracy(defended.model, ds.x[test], ds.y[test]) >= majority + MARGIN_OVER_MAJORITY


def test_dpsgd_refuses_batch_norm_in_one_line():
    """Batch norm mixes a batch's records, so DP-SGD's per-record clipping (and its epsilon) does
    not hold: a ConfigError before training, not Opacus' traceback."""
    rng = np.random.default_rng(0)
    task = TrainingTask(
        x=rng.random((40, 3, 8, 8), dtype=np.float32), y=rng.integers(0, 2, 40), private_idx=np.arange(20),
        reference_idx=None, num_classes=2, seed=0, model="resnet", options={"widths": (4, 8)}, recipe=TrainingRecipe(),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="batch norm"):
        parse_defense("dpsgd:epsilon=4").build(task)
