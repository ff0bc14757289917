"""The NN attack's size tuned on shadow 0 as stand-in target: reproducible from the seed, recorded,
and refused without enough shadow models."""

import numpy as np
import pytest

from miaudit.attacks.nn_attack import HIDDEN, NNAttack, tapered_layers
from miaudit.errors import ConfigError
from miaudit.experiments import AuditConfig, run_audit


def _tuned_nn(tmp_path, seed):
    config = AuditConfig(dataset="digits", model="random_forest", attacks=("nn",), seed=seed, n_shadow_models=4, n_bootstrap=0,
                         attack_options={"nn": {"tune": True, "tune_trials": 3}}, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    (outcome,) = run_audit(config, progress=False).outcomes
    return outcome.result


def test_tuned_size_is_reproducible_from_the_seed_and_written_in_details(tmp_path):
    first, again = _tuned_nn(tmp_path, 0), _tuned_nn(tmp_path, 0)
    assert first.details["tuned"] == again.details["tuned"]
    np.testing.assert_array_equal(first.scores, again.scores)
    tuned = first.details["tuned"]
    assert set(tuned) == {"width", "depth", "lr"} and "stand-in target" in first.details["tuning"]
    assert first.details["network"] == "-".join(map(str, tapered_layers(int(tuned["width"]), int(tuned["depth"]))))


def test_the_default_trial_is_the_papers_network_and_bad_options_are_config_errors():
    assert tapered_layers(512, 3) == HIDDEN
    for bad in ({"tune": "yes"}, {"tune_trials": 0}, {"tune_objective": "f1"}, {"max_epochs": 0}):
        with pytest.raises(ConfigError):
            NNAttack(**bad)


def test_tuning_needs_four_shadow_models(tmp_path):
    config = AuditConfig(dataset="digits", model="random_forest", attacks=("nn",), n_shadow_models=2, n_bootstrap=0,
                         attack_options={"nn": {"tune": True}}, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    with pytest.raises(ConfigError, match="at least 4 shadow models"):
        run_audit(config, progress=False)
