"""The one-shot label-only attacks (yoqo, oslo): queries counted, labels only, power, determinism, options."""

import numpy as np
import pytest

from miaudit.attacks import ATTACKS
from miaudit.attacks.surrogate_gradients import InputBox, torch_modules
from miaudit.data.split import SplitSizes
from miaudit.errors import ConfigError
from miaudit.experiments import AuditConfig, run_audit
from miaudit.targets.access import TargetAccess
from synthetic import WHITE_BOX_TARGET, write_synthetic

ONE_SHOT = ("yoqo", "oslo")


def _audit(tmp_path, attacks=ONE_SHOT, *, options=None, output="label", seed=0, defense=None, n_shadow_models=4):
    """A torch MLP that memorizes random labels of random 32-dimensional records (a leaking target
    that trains in seconds), gray box, labels only unless ``output`` says otherwise."""
    return run_audit(
        AuditConfig(
            dataset=str(write_synthetic(tmp_path, "memorizing", n=1200, d=WHITE_BOX_TARGET["d"], seed=seed)),
            model=WHITE_BOX_TARGET["model"], model_options=WHITE_BOX_TARGET["model_options"],
            recipe=WHITE_BOX_TARGET["recipe"], seed=seed, split=SplitSizes(0.25, 0.25, 0.5), threat_model="gray-box",
            output=output, attacks=attacks, attack_options=options or {}, n_shadow_models=n_shadow_models, n_bootstrap=0,
            cache_dir=str(tmp_path / "cache"), defense=defense,
        ),
        progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return _audit(tmp_path_factory.mktemp("oneshot"))


def test_one_query_per_record_and_the_leak_is_caught(labelled):
    assert labelled.skipped == {}
    for o in labelled.outcomes:
        assert o.result.queries_per_record == 1.0, o.result.attack
        # kept (1) or not (0), ranked within each by a tie-break of width 1/5 that needs no query
        decided = o.result.scores >= o.result.threshold
        assert np.all(np.abs(o.result.scores - decided) <= 0.2)
        assert o.metrics.auc >= 0.75, (o.result.attack, o.metrics.auc)
        assert o.metrics.balanced_accuracy >= 0.75, (o.result.attack, o.metrics.balanced_accuracy)
        assert o.result.details["radius"] is not None


def test_registered_as_label_only_with_shadow_models():
    for name in ONE_SHOT:
        req = ATTACKS.get(name).requirements
        assert req.output.name == "LABEL" and req.shadow_models and req.architecture and req.training_recipe


def test_graded_queries_are_all_counted(tmp_path):
    graded = {"n_queries": 3, "tie_break": False}  # the bare kept fraction
    result = _audit(tmp_path, options={"yoqo": graded, "oslo": graded})
    for o in result.outcomes:
        assert o.result.queries_per_record == 3.0, o.result.attack
        assert set(np.unique(o.result.scores)) <= {0.0, 1 / 3, 2 / 3, 1.0}
        assert o.result.threshold == 0.5


def test_only_labels_are_asked_for(tmp_path, monkeypatch):
    """With the full vector on offer (gray box, probabilities), the attacks still only ask for labels."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("a one-shot label-only attack asked for more than the label")

    for method in ("predict_proba", "predict_topk", "losses", "gradients"):
        monkeypatch.setattr(TargetAccess, method, refuse)
    result = _audit(tmp_path, output="probabilities")
    assert [o.result.attack for o in result.outcomes] == list(ONE_SHOT)


def test_seeded_runs_repeat(tmp_path, labelled):
    again = _audit(tmp_path)
    for a, b in zip(labelled.outcomes, again.outcomes, strict=True):
        np.testing.assert_array_equal(a.result.scores, b.result.scores, err_msg=a.result.attack)


@pytest.mark.parametrize(
    "name, options",
    [
        ("yoqo", {"steps": 0}),
        ("yoqo", {"n_queries": 5, "steps": 4}),
        ("yoqo", {"online": "yes"}),
        ("yoqo", {"tie_break": 1}),
        ("yoqo", {"radius": -0.1}),
        ("yoqo", {"step_size": float("inf")}),
        ("oslo", {"threshold": 1.5}),
        ("oslo", {"n_validation": 0}),
        ("oslo", {"n_queries": 3, "min_threshold": 0.5, "max_threshold": 0.1}),
        ("oslo", {"radius": 0}),
        ("oslo", {"tie_break": "no"}),
    ],
)
def test_bad_options_are_config_errors(name, options):
    with pytest.raises(ConfigError):
        ATTACKS.get(name)(**options)


def test_more_validation_models_than_shadows_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="validation models"):
        _audit(tmp_path, ("oslo",), options={"oslo": {"n_validation": 4}})


def test_an_output_defense_gives_the_network_underneath(tmp_path):
    """Against an output-time defense, the adaptive attacker's shadows wrap their outputs: the
    attacks craft on the networks underneath (the label-only release keeps their labels)."""
    result = _audit(tmp_path, defense="rounding")
    for o in result.outcomes:
        assert o.result.queries_per_record == 1.0 and o.metrics.auc >= 0.75, (o.result.attack, o.metrics.auc)


def test_one_shadow_model_is_enough(tmp_path):
    """An audit that affords one model: yoqo runs offline, oslo uses it as source and validation."""
    result = _audit(tmp_path, n_shadow_models=1)
    by_name = {o.result.attack: o for o in result.outcomes}
    assert by_name["yoqo"].result.details["online"] is False
    assert by_name["oslo"].result.details["source_models"] == by_name["oslo"].result.details["validation_models"] == 1
    for o in result.outcomes:
        assert o.result.queries_per_record == 1.0 and o.metrics.auc > 0.6, (o.result.attack, o.metrics.auc)


def test_a_non_differentiable_surrogate_is_refused():
    class Wrapped:  # e.g. an output-time defense: probabilities, no module
        def predict_proba(self, x):
            return np.full((len(x), 2), 0.5)

    with pytest.raises(ConfigError, match="label-boundary"):
        torch_modules([Wrapped()], "oslo")


def test_the_box_round_trips_records():
    x = np.random.default_rng(0).random((5, 2, 3)).astype(np.float32)
    box = InputBox.of(x)
    np.testing.assert_allclose(box.from_unit(box.to_unit(x)), x, rtol=1e-5, atol=1e-6)
    assert box.to_unit(x).min() >= 0 and box.to_unit(x).max() <= 1
