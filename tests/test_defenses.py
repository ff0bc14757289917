"""Defenses (miaudit.defenses): each on a small Location30 subset, plus the privacy-utility study.

Sizes are small so that the whole file runs in well under a minute; the minimum accuracies
below are stated for this setting (300 training records, a 32-unit MLP, 10 epochs; chance is
1/30 = 0.033) and sit well under what the defenses reach here. The undefended model is trained
once per module and output-time defenses wrap it.
"""

import subprocess
import sys

import numpy as np
import pytest

from miaudit.data import load_dataset
from miaudit.defenses import DEFENSES, DefendedOutputs, TrainingTask, parse_defense, parse_defenses
from miaudit.errors import ConfigError, InputError, UnknownNameError
from miaudit.models import TrainingRecipe


@pytest.fixture(scope="module")
def small(request):
    import os
    from pathlib import Path

    value = os.environ.get("MIAUDIT_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("MIAUDIT_DATA_DIR is not set to the shared data folder (make test sets it)")
    ds = load_dataset("location30", value)
    perm = np.random.default_rng(7).permutation(len(ds.y))
    private, test, reference = np.sort(perm[:300]), np.sort(perm[300:600]), np.sort(perm[600:900])
    task = TrainingTask(
        x=ds.x, y=ds.y, private_idx=private, reference_idx=reference, num_classes=ds.num_classes, seed=0,
        model="mlp", options={"hidden": (32,), "activation": "tanh"}, recipe=TrainingRecipe(epochs=8, lr=4e-3),
    )  # fmt: skip
    return ds, task, test


@pytest.fixture(scope="module")
def base(small):
    return parse_defense("none").build(small[1]).model


def _accuracy(model, x, y):
    return float((np.asarray(model.predict_proba(x)).argmax(axis=1) == y).mean())


# Stated minimum test accuracies on the small Location30 subset (chance 0.033).
MINIMUM_ACCURACY = {
    "none": 0.25,
    "weight-decay": 0.25,
    "dropout": 0.20,
    "early-stopping:fraction=0.5": 0.15,
    "dmp": 0.20,
    "advreg:k=1": 0.10,
    "dpsgd:epsilon=none,noise_multiplier=0.5,epochs=4,lr=0.05": 0.08,
    "memguard:max_iter=10,rounds=1": 0.25,
    "top-k": 0.25,
    "rounding": 0.25,
    "label-only": 0.25,
    "gaussian-noise": 0.20,
    "label-smoothing": 0.25,
    "relaxloss": 0.25,
    "hamp": 0.25,
    "selena:K=3,L=1": 0.15,
}


def test_every_registered_defense_has_a_stated_minimum():
    assert {spec.split(":")[0] for spec in MINIMUM_ACCURACY} == set(DEFENSES.names())


@pytest.mark.parametrize("spec", list(MINIMUM_ACCURACY))
def test_each_defended_model_trains_to_its_stated_minimum_accuracy(small, base, spec):
    ds, task, test = small
    defense = parse_defense(spec)
    if defense.stage == "output":  # the same trained model, wrapped (MemGuard fits its classifier on it)
        model = defense.wrap(base, task if defense.needs_reference else None)
        x = ds.x[test[:100]]
        assert np.array_equal(model.predict_proba(x).argmax(1), base.predict_proba(x).argmax(1)) or spec == "gaussian-noise"
    else:
        model = defense.build(task).model
    assert _accuracy(model, ds.x[test], ds.y[test]) >= MINIMUM_ACCURACY[spec]


def test_dpsgd_reports_the_epsilon_it_spends(small):
    _, task, _ = small
    info = parse_defense("dpsgd:epsilon=4,epochs=1,delta=1e-4").build(task).info
    assert 3.8 <= info["epsilon"] <= 4.0 + 1e-6 and info["delta"] == 1e-4 and 0 < info["noise_multiplier"] < 3
    # With a noise multiplier instead, epsilon is what the accountant says: more noise, less epsilon.
    low = parse_defense("dpsgd:epsilon=none,noise_multiplier=3,epochs=1,delta=1e-4").build(task).info["epsilon"]
    assert 0 < low < info["epsilon"]


def test_memguard_never_changes_the_label_and_releases_distributions(small):
    ds, task, test = small
    defense = parse_defense("memguard:max_iter=60,rounds=2")
    defended = defense.build(task)
    x = ds.x[test[:40]]
    true = defended.model.base.predict_proba(x)
    released = defended.model.predict_proba(x)
    assert np.array_equal(released.argmax(axis=1), true.argmax(axis=1))
    np.testing.assert_allclose(released.sum(axis=1), 1.0, atol=1e-9)
    assert (released >= 0).all()
    changed = np.abs(released - true).sum(axis=1) > 1e-6
    assert changed.mean() > 0.5  # phase I found noise for most records, and budget 1.0 releases it
    # The defender's classifier is pushed to 0.5 on the released vectors.
    from miaudit.defenses.memguard import member_probability

    g = defended.model.state.classifier

    def member_prob(p):
        return member_probability(g, p)

    assert np.abs(member_prob(released) - 0.5)[changed].mean() < np.abs(member_prob(true) - 0.5)[changed].mean()
    np.testing.assert_array_equal(defended.model.predict_proba(x), released)  # a repeated query: same answer
    # Budget 0: phase II never releases noise.
    zero = parse_defense("memguard:budget=0,max_iter=5,rounds=1").wrap(defended.model.base, task)
    np.testing.assert_allclose(zero.predict_proba(x), true, atol=1e-12)


def test_dmp_student_never_sees_a_private_record(small, monkeypatch):
    from miaudit.defenses import dmp

    ds, task, _ = small
    seen = []
    real = dmp.train_student

    def spy(module, x_ref, soft, recipe, *, seed):
        seen.append(np.array(x_ref))
        return real(module, x_ref, soft, recipe, seed=seed)

    monkeypatch.setattr(dmp, "train_student", spy)
    parse_defense("dmp").build(task)
    (x_student,) = seen
    np.testing.assert_array_equal(x_student, ds.x[task.reference_idx])
    assert not np.intersect1d(task.reference_idx, task.private_idx).size
    # And the defense refuses reference data that overlap the private set.
    bad = TrainingTask(**{**task.__dict__, "reference_idx": task.private_idx[:10]})
    with pytest.raises(ConfigError, match="also private"):
        parse_defense("dmp").build(bad)


def test_output_hardening_baselines(small, base):
    ds, task, test = small
    x = ds.x[test[:50]]
    true = base.predict_proba(x)
    top = parse_defense("top-k:k=2").wrap(base).predict_proba(x)
    assert ((top > 0).sum(axis=1) <= 2).all() and np.array_equal(top.argmax(1), true.argmax(1))
    rounded = parse_defense("rounding:decimals=1").wrap(base).predict_proba(x)
    np.testing.assert_allclose(rounded, np.round(rounded, 1), atol=1e-12)
    assert np.array_equal(rounded.argmax(1), true.argmax(1))
    onehot = parse_defense("label-only").wrap(base).predict_proba(x)
    assert set(np.unique(onehot)) <= {0.0, 1.0} and np.array_equal(onehot.argmax(1), true.argmax(1))
    noisy = parse_defense("gaussian-noise:sigma=0.1").wrap(base)
    np.testing.assert_allclose(noisy.predict_proba(x).sum(axis=1), 1.0)
    np.testing.assert_array_equal(noisy.predict_proba(x), noisy.predict_proba(x))


def test_adaptive_shadows_are_built_with_the_defense(small):
    from miaudit.attacks import AttackerKnowledge, ModelSpec
    from miaudit.attacks.shadow_models import train_shadow_models
    from miaudit.threat import THREAT_MODELS

    ds, task, _ = small
    pool = task.reference_idx
    recipe = TrainingRecipe(epochs=2)
    spec = ModelSpec(task.model, task.options, recipe, parse_defense("memguard:max_iter=5,rounds=1"))
    knowledge = AttackerKnowledge.under(
        THREAT_MODELS.get("gray-box"), num_classes=30, input_shape=(446,), seed=1, pool_x=ds.x[pool],
        pool_y=ds.y[pool], pool_fingerprint="pool", target_model=spec,
    )  # fmt: skip
    shadows = train_shadow_models(knowledge, 2)
    assert all(isinstance(s.model, DefendedOutputs) for s in shadows)
    for s in shadows:  # half of each shadow's training half is its reference set: neither in nor out
        assert len(s.in_idx) == 75 and len(s.out_idx) == 150 and not np.intersect1d(s.in_idx, s.out_idx).size
    assert train_shadow_models(knowledge, 2)[0] is shadows[0]  # memoised across attacks


def test_defense_specs_parse_and_refuse_bad_input():
    assert [d.spec() for d in parse_defenses("none,dpsgd:epsilon=4,delta=1e-6,memguard")] == [
        "none", "dpsgd:epsilon=4.0,delta=1e-06", "memguard",
    ]  # fmt: skip
    with pytest.raises(UnknownNameError, match="unknown defense 'nope'"):
        parse_defense("nope")
    with pytest.raises(ConfigError, match="no parameter"):
        parse_defense("memguard:eps=1")
    with pytest.raises(ConfigError, match="epsilon or noise_multiplier"):
        parse_defense("dpsgd:noise_multiplier=1")
    with pytest.raises(ConfigError, match="training-time"):
        from miaudit.defenses.serving import defend_served_model

        defend_served_model(object(), "dpsgd")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["defend", "--defenses", "none,bogus"], "unknown defense 'bogus'"),
        (["defend", "--defenses", "memguard:budget=-1"], "budget must be"),
        (["defend", "--defenses", "none", "--attacks", "nope"], "unknown attack"),
        (["defend", "--defenses", "none", "--split", "1000,1000"], "three positive record counts"),
        (["defend", "--defenses", "none", "--split", "a,b,c"], "comma-separated integers"),
    ],
)
def test_cli_defense_errors_are_one_line_exit_2(args, fragment):
    proc = subprocess.run([sys.executable, "-m", "miaudit", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_served_model_behind_memguard(small, base, tmp_path):
    from miaudit.defenses.serving import defend_served_model
    from miaudit.targets.server import create_app

    ds, task, test = small
    data = tmp_path / "defender.npz"
    np.savez(data, members=ds.x[task.private_idx], nonmembers=ds.x[task.reference_idx])
    served = defend_served_model(base, "memguard:max_iter=10,rounds=1", str(data))
    x = ds.x[test[:20]]
    assert np.array_equal(served.predict_proba(x).argmax(1), base.predict_proba(x).argmax(1))
    create_app(served, output="full")  # the server takes the defended model as it takes any classifier
    np.savez(data, members=ds.x[:5, :10], nonmembers=ds.x[:5])
    with pytest.raises(InputError, match="shape"):
        defend_served_model(base, "memguard", str(data))
    with pytest.raises(ConfigError, match="needs --defense-data"):
        defend_served_model(base, "memguard")


def test_defend_writes_the_privacy_utility_table_and_plot(small, tmp_path):
    import csv
    import json

    from miaudit.data.split import SplitSizes
    from miaudit.experiments.defend import DefendConfig, run_defend, write_defend

    config = DefendConfig(
        defenses=("none", "label-only"), seeds=(0,), split=SplitSizes(200, 200, 200, 200), epochs=2,
        attacks=("confidence", "correctness"), n_shadow_models=2,
    )  # fmt: skip
    study = run_defend(config, out_dir=tmp_path)
    paths = write_defend(study, tmp_path)
    rows = list(csv.DictReader(open(paths["privacy_utility.csv"])))
    assert [r["defense"] for r in rows] == ["none", "label-only"]
    none, label = study["rows"]
    assert none["test_accuracy"] == label["test_accuracy"]  # label-only keeps every label
    # One-hot outputs leave the confidence attack only the correctness of each label.
    assert label["per_attack"]["confidence"]["auc"] < none["per_attack"]["confidence"]["auc"]
    assert none["upper_bound_auc_attack"] in ("confidence", "correctness")
    assert none["headline_attack"] == "confidence"  # the verdict's fixed order: confidence before correctness
    assert paths["privacy_utility.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["privacy_utility.json"].read_text())["protocol"]["attacker"].startswith("adaptive")


def test_defend_runs_online_lira_and_rmia_on_defended_references(small, monkeypatch, tmp_path):
    import miaudit.attacks.lira as lira
    import miaudit.attacks.rmia as rmia
    from miaudit.data.split import SplitSizes
    from miaudit.experiments.defend import DefendConfig, run_defend

    references: dict[str, list] = {"lira": [], "rmia": []}
    for name, module in (("lira", lira), ("rmia", rmia)):
        real = module.train_online_references

        def recording(knowledge, x, y, n, real=real, name=name):
            refs = real(knowledge, x, y, n)
            references[name].append(refs.models)
            return refs

        monkeypatch.setattr(module, "train_online_references", recording)
    for adaptive in (True, False):
        config = DefendConfig(
            defenses=("rounding",), seeds=(0,), split=SplitSizes(100, 100, 100, 100), epochs=2,
            attacks=("lira", "rmia"), n_shadow_models=2, adaptive=adaptive, cache_dir=str(tmp_path),
        )  # fmt: skip
        study = run_defend(config)
        assert set(study["rows"][0]["per_attack"]) == {"lira", "rmia"}
        for name in ("lira", "rmia"):
            models = references[name].pop()
            assert [isinstance(m, DefendedOutputs) for m in models] == [adaptive, adaptive]  # naive: undefended
