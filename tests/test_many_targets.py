"""The many-target protocol: every model on a random half, each target against the others."""

import json

import numpy as np
import pytest

from miaudit.cli import main
from miaudit.errors import ConfigError
from miaudit.experiments.many_targets import PROTOCOL_ATTACKS, ManyTargetConfig, run_many_targets


def _config(tmp_path, **kw):
    base = dict(dataset="digits", n_models=6, n_targets=2, reference_counts=(1, 2, 4), recipe={"epochs": 2}, cache_dir=str(tmp_path))
    return ManyTargetConfig(**{**base, **kw})


def test_rows_cover_every_attack_and_count_the_references_used(tmp_path):
    result = run_many_targets(_config(tmp_path))
    rows = {(r["attack"], r["reference_models"]): r for r in result.rows}
    assert {a for a, _ in rows} == set(PROTOCOL_ATTACKS.names())
    assert ("lira", 1) not in rows and ("rmia", 1) not in rows  # online needs an IN and an OUT model
    assert rows[("lira", 2)]["refs_used"] == 2.0  # one IN and one OUT per record
    assert rows[("lira-offline", 2)]["refs_used"] == 2.0
    # 6 models: a record is OUT for 3, one of which may be the target: 4 asked, 2 or 3 available.
    assert 2.0 <= rows[("lira-offline", 4)]["refs_used"] < 3.0
    for r in rows.values():
        assert r["targets"] == 2 and 0.0 <= r["auc"] <= 1.0
    assert len(result.test_accuracy) == 2 and min(result.test_accuracy) > 0.5


def test_cli_writes_tables_and_rejects_bad_counts(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["many-targets", "--dataset", "digits", "--models", "6", "--targets", "1", "--reference-counts", "2",
            "--epochs", "2", "--cache-dir", str(tmp_path / "c"), "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    saved = json.loads((out / "many_targets.json").read_text())
    assert saved["models_trained"] == 6 and {r["attack"] for r in saved["rows"]} == set(PROTOCOL_ATTACKS.names())
    assert "| lira | 2 |" in (out / "many_targets.md").read_text()
    # each target's audit record: the same schema as any audit, readable and reportable
    import miaudit

    record = miaudit.read(out / "target-0")
    assert set(record.scores) == set(PROTOCOL_ATTACKS.names()) and record.summary["kind"] == "many-targets"
    lira_row = next(r for r in saved["rows"] if r["attack"] == "lira")
    assert abs(record.attacks["lira"]["auc"] - lira_row["auc"]) < 1e-12  # one target: its AUC is the row's
    assert record.verdict is not None and main(["report", str(out / "target-0")]) == 0
    assert main(args[:-1] + ["--reference-counts", "two"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
    assert main(["many-targets", "--dataset", "digits", "--models", "5"]) == 2


def test_unknown_attack_and_odd_models_are_refused(tmp_path):
    with pytest.raises(ConfigError):
        run_many_targets(_config(tmp_path, n_models=5))
    with pytest.raises(Exception, match="unknown many-target attack"):
        run_many_targets(_config(tmp_path, attacks=("nope",)))


def test_image_views_are_averaged(tmp_path):
    from miaudit.attacks.augment import AUGMENTATIONS, resolve, shift, views_of

    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    name, views = resolve("auto", (1, 4, 4))
    assert name == "flip-shift" and len(views) == 10 == len(views_of(x, views))
    np.testing.assert_array_equal(views_of(x, AUGMENTATIONS.get("flip")())[1], x[..., ::-1])
    moved = shift(x, 0, 1)
    np.testing.assert_array_equal(moved[..., 1:], x[..., :-1])  # one pixel to the right
    assert resolve("auto", (30,))[0] == "none"
    with pytest.raises(ConfigError, match="needs images"):
        resolve("flip", (30,))


@pytest.fixture(scope="module")
def six_models():
    """Six tiny MLPs on paired halves of 300 random records (the many-target layout)."""
    from miaudit.attacks.knowledge import ModelSpec
    from miaudit.attacks.shadow_models import half_splits
    from miaudit.attacks.train_models import train_models
    from miaudit.experiments.many_targets import compute_outputs
    from miaudit.models import TrainingRecipe

    rng = np.random.default_rng(0)
    x, y = rng.random((300, 8), dtype=np.float32), rng.integers(0, 4, 300)
    subsets = half_splits(len(y), 6, seed=0)
    spec = ModelSpec("mlp", {"hidden": [32], "activation": "relu"}, TrainingRecipe(epochs=20, batch_size=32, lr=3e-3))
    models = [m.model for m in train_models(spec, x, y, subsets, list(range(6)), num_classes=4)]
    return x, y, models, compute_outputs(models, x, y, subsets, "none")


def _context(outputs, k):
    from miaudit.experiments.many_targets import Context

    return Context(outputs.take(np.array([0])), outputs.take(np.arange(1, 6)), k)


def test_many_target_lira_is_the_lira_attacks_score_on_the_same_references(six_models):
    """Target 0 against models 1..5: the protocol's LiRA equals what the ``lira`` attack's scoring
    code (target queried through TargetAccess, references' phi, ``lira_online_scores``) gives."""
    from miaudit.attacks.lira import LiraAttack, lira_online_scores, use_per_record
    from miaudit.targets.access import TargetAccess
    from miaudit.threat import THREAT_MODELS

    x, y, models, outputs = six_models
    for k in (2, 4):
        context = _context(outputs, k)
        protocol, _ = PROTOCOL_ATTACKS.get("lira")(context)
        access = TargetAccess(models[0], THREAT_MODELS.get("gray-box"), input_shape=(8,))
        phi_target = LiraAttack._target_phi(access, [x], y)
        phi_refs = LiraAttack._reference_phi(models[1:], [x], y)
        per_record = use_per_record("auto", len(models) - 1)
        attack = lira_online_scores(phi_target, phi_refs, context.in_half, context.out_half, per_record=per_record)
        np.testing.assert_allclose(protocol, attack, rtol=1e-9, atol=1e-9)
        assert np.ptp(attack) > 0.1  # not a degenerate score


def test_many_target_rmia_is_the_rmia_attacks_score_on_the_same_references(six_models):
    """Online RMIA with every reference and every record as the population: the protocol's score
    equals the ``rmia`` attack's code (``marginal`` over all references, ``population_fraction``)."""
    from miaudit.attacks.loss import true_class_probability
    from miaudit.attacks.rmia import _p_y, likelihood_ratio, marginal, population_fraction
    from miaudit.targets.access import TargetAccess
    from miaudit.threat import THREAT_MODELS

    x, y, models, outputs = six_models
    context = _context(outputs, 64)  # more than there are: every IN and every OUT reference
    np.testing.assert_array_equal(context.in_half | context.out_half, True)
    protocol, used = PROTOCOL_ATTACKS.get("rmia")(context)
    assert used == 5.0
    access = TargetAccess(models[0], THREAT_MODELS.get("gray-box"), input_shape=(8,))
    ratio = likelihood_ratio(true_class_probability(access.predict_proba(x), y), marginal(_p_y(models[1:], x, y)))
    np.testing.assert_array_equal(protocol, population_fraction(ratio, ratio, 1.0))


def test_many_target_base_is_the_base_attacks_score_on_the_same_references(six_models):
    """Online BASE with every reference: the protocol's score equals the ``base`` attack's code
    (the target queried through TargetAccess, tempered log p_y at T = 2, ``base_online_scores``);
    offline, the threshold uses only the references that did not train on the record."""
    from miaudit.attacks.bayes_base import _signals, base_offline_scores, base_online_scores, tempered_log_confidence
    from miaudit.targets.access import TargetAccess
    from miaudit.threat import THREAT_MODELS

    x, y, models, outputs = six_models
    context = _context(outputs, 64)
    access = TargetAccess(models[0], THREAT_MODELS.get("gray-box"), input_shape=(8,))
    s_target = tempered_log_confidence(access.predict_proba(x), y, 2.0)
    s_refs = _signals(models[1:], x, y, 2.0)
    protocol, used = PROTOCOL_ATTACKS.get("base")(context)
    assert used == 5.0
    np.testing.assert_allclose(protocol, base_online_scores(s_target, s_refs), rtol=1e-6, atol=1e-6)
    offline, _ = PROTOCOL_ATTACKS.get("base-offline")(context)
    np.testing.assert_allclose(offline, base_offline_scores(s_target, s_refs, context.out_k, 0.33), rtol=1e-6, atol=1e-6)
    assert np.ptp(protocol) > 0.1
