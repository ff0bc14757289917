"""`miaudit privacy-audit`: sound on correct DP-SGD, catches a broken one, large on a memorising model.

Location30 subsets, out-of-distribution canaries, the loss attack, one-run bounds at 95%
confidence with selection on a held-out half. Measured here (seed 0): correct DP-SGD claiming
epsilon 1 gives a bound of 0.0 with 1000 canaries; the same run with a tenth of the claimed noise
(claimed epsilon 0.994) gives 1.761, above the claim; a non-private model gives 2.37 with 400
canaries, what a perfect attack's scores give on the same coins (the largest bound 400 canaries
allow at 95% with guess counts chosen on a held-out half).
"""

import json

import numpy as np
import pytest

from miaudit.auditing.base import BOUNDS
from miaudit.cli import main
from miaudit.experiments.privacy_audit import PrivacyAuditConfig, run_privacy_audit


@pytest.fixture
def data_dir(real_data_dir):
    return str(real_data_dir)


def _bounds(record):
    return {b["method"]: b["epsilon"] for b in record["bounds"]}


@pytest.mark.parametrize("epsilon", [1.0, 4.0, 8.0])
def test_no_bound_exceeds_the_accountants_epsilon_on_correct_dp_sgd(data_dir, epsilon):
    for seed in (0, 1) if epsilon == 1.0 else (0,):  # repeated seeds where the bound has least room
        # 5 epochs (the accountant counts the steps that ran) and 400 records keep the four trainings short
        config = PrivacyAuditConfig(canaries=200, base_records=200, epsilon=epsilon, dp_params={"epochs": 5}, seed=seed,
                                    data_dir=data_dir)  # fmt: skip
        record = run_privacy_audit(config)
        assert record["accountant_epsilon"] <= epsilon + 1e-6
        assert _bounds(record)["one-run"] <= record["accountant_epsilon"], (epsilon, seed, record["bounds"])


def test_a_broken_dp_sgd_is_caught(data_dir):
    """DP-SGD that claims its noise multiplier but adds a tenth of it: the bound exceeds the claim."""
    config = PrivacyAuditConfig(canaries=1000, base_records=1000, epsilon=1.0, noise_divisor=10.0, data_dir=data_dir)
    record = run_privacy_audit(config)
    assert _bounds(record)["one-run"] > record["accountant_epsilon"] > 0.9
    report = record["training"]["dpsgd"]  # the fault's bookkeeping: the claim, and what was really added
    assert report["actual_noise_multiplier"] == pytest.approx(report["claimed_noise_multiplier"] / 10)
    assert report["epsilon_of_actual_noise"] > 5 * record["accountant_epsilon"]


def test_a_memorising_model_gives_the_largest_bound_its_canaries_allow(data_dir, tmp_path, capsys):
    out = tmp_path / "audit"
    assert main(["privacy-audit", "--canaries", "400", "--base-records", "1000", "--data-dir", data_dir,
                 "--quiet", "--out", str(out)]) == 0  # fmt: skip
    record = json.loads((out / "privacy_audit.json").read_text())
    coins = np.asarray(record["canaries"]["coins"], dtype=bool)
    perfect = coins + np.linspace(0.0, 0.5, len(coins))  # a perfect attack on the same coins, no ties
    cap = BOUNDS.get("one-run")(perfect, coins, delta=1e-5).epsilon
    assert record["accountant_epsilon"] is None and _bounds(record)["one-run"] >= 0.9 * cap > 2.0
    assert (out / "privacy_audit.md").read_text().startswith("| method |")
    assert 'id="empirical-epsilon"' in (out / "report.html").read_text()  # the HTML report, written beside them
    capsys.readouterr()


def test_lira_and_gradient_canaries_score_through_the_audit(data_dir):
    """LiRA calibrates each canary on reference models (online: each canary IN exactly half of
    them, independent of the target's coins); gradient canaries are scored by their coordinate's
    move. On a memorising model LiRA separates the coins as well as the loss does."""
    from miaudit.auditing.reference_canaries import reference_memberships

    lira = run_privacy_audit(PrivacyAuditConfig(canaries=200, base_records=300, attack="lira", references=4, data_dir=data_dir))
    refs = lira["training"]["references"]
    assert lira["config"]["attack"] == "lira" and refs["models"] == 4
    memberships = reference_memberships(200, 4, 0, online=True)
    assert (memberships.sum(axis=0) == 2).all() and refs["canaries_in_each"] == [int(r.sum()) for r in memberships]
    assert not (memberships == np.asarray(lira["canaries"]["coins"], dtype=bool)).all(axis=1).any()
    coins = np.asarray(lira["canaries"]["coins"], dtype=bool)
    perfect = coins + np.linspace(0.0, 0.5, len(coins))
    assert _bounds(lira)["one-run"] >= 0.9 * BOUNDS.get("one-run")(perfect, coins, delta=1e-5).epsilon
    grad = run_privacy_audit(PrivacyAuditConfig(canary_kind="dirac", canaries=200, base_records=300, noise_multiplier=0.5,
                                                dp_params={"epochs": 3}, data_dir=data_dir))  # fmt: skip
    assert grad["config"]["attack"] == "parameter-move" and grad["canaries"]["kind"] == "dirac"
    assert 0 < _bounds(grad)["one-run"] <= grad["accountant_epsilon"]


@pytest.mark.parametrize("args, fragment", [
    (["--canaries", "0"], "canaries must be a whole number >= 1"),
    (["--mode", "multi-run", "--attack", "lira"], "only the one-run audit trains"),
    (["--canary-kind", "dirac"], "give --epsilon or --noise-multiplier"),
    (["--canary-kind", "dirac", "--epsilon", "1", "--attack", "loss"], "scored by their parameter's move"),
    (["--attack", "lira", "--references", "3"], "even number of reference models"),
    (["--attack", "bogus"], "cannot score canaries"),
    (["--mode", "multi-run", "--runs", "3"], "cannot give a positive epsilon bound"),
    (["--canary-kind", "bogus"], "unknown canary kind"),
    (["--mode", "two-run"], "unknown mode"),
])  # fmt: skip
def test_errors_are_one_line_and_exit_2(tmp_path, capsys, args, fragment, data_dir):
    assert main(["privacy-audit", *args, "--data-dir", data_dir, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
