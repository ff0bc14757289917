"""Reference-model attacks: LiRA, RMIA and Attack-R."""

import numpy as np
import pytest

from miaudit.attacks import ATTACKS
from scipy.stats import norm

from miaudit.attacks.attack_r import attack_r_scores
from miaudit.attacks.lira import lira_offline_scores, lira_online_scores, logit_scaled_confidence
from miaudit.attacks.reference_stats import first_per_record
from miaudit.attacks.rmia import likelihood_ratio, marginal, offline_marginal, population_fraction
from miaudit.errors import ConfigError


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_phi_is_log_odds_of_the_true_class():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(200, 7))
    y = rng.integers(0, 7, 200)
    p = _softmax(logits)[np.arange(200), y]
    np.testing.assert_allclose(logit_scaled_confidence(logits, y), np.log(p / (1 - p)), rtol=1e-9, atol=1e-9)


def test_phi_is_finite_on_saturated_logits():
    logits = np.zeros((2, 3))
    logits[0, 1] = 200.0  # the true class far ahead: p_y rounds to 1
    logits[1, 0] = 200.0  # another class far ahead: p_y rounds to 0
    phi = logit_scaled_confidence(logits, np.array([1, 1]))
    assert np.isfinite(phi).all()
    np.testing.assert_allclose(phi, [200.0 - np.log(2.0), -200.0], rtol=1e-12)


def test_lira_scores_grow_with_the_target_confidence():
    rng = np.random.default_rng(1)
    phi_out = rng.normal(size=(4, 50))
    low = lira_offline_scores(np.zeros(50), phi_out)
    high = lira_offline_scores(np.full(50, 3.0), phi_out)
    assert (high > low).all() and np.isfinite(low).all()
    per_record = lira_offline_scores(np.zeros(50), phi_out, per_record=True)
    assert np.isfinite(per_record).all()


def test_lira_online_matches_the_closed_form_likelihood_ratio():
    # IN ~ N(1, 1), OUT ~ N(0, 1): log N(t; 1, 1) - log N(t; 0, 1) = t - 1/2 exactly.
    rng = np.random.default_rng(4)
    n, r = 40, 20000
    in_mask = np.zeros((r, n), dtype=bool)
    in_mask[: r // 2] = True
    phi_refs = np.where(in_mask, rng.normal(1.0, 1.0, (r, n)), rng.normal(0.0, 1.0, (r, n)))
    t = np.linspace(-2, 3, n)
    for per_record in (False, True):
        got = lira_online_scores(t, phi_refs, in_mask, ~in_mask, per_record=per_record)
        np.testing.assert_allclose(got, t - 0.5, atol=0.15)


def test_lira_exact_on_constructed_references():
    # Two IN values mu_in +- s and two OUT values mu_out +- s per record: per-record means and
    # standard deviations are exactly (mu_in, s) and (mu_out, s); the pooled one is s * sqrt(2).
    mu_in, mu_out, s = np.array([2.0, 1.0]), np.array([0.0, -1.0]), 0.5
    refs = np.stack([mu_in - s, mu_in + s, mu_out - s, mu_out + s])
    in_mask = np.array([[True] * 2, [True] * 2, [False] * 2, [False] * 2])
    t = np.array([1.5, -0.25])
    got = lira_online_scores(t, refs, in_mask, ~in_mask, per_record=True)
    np.testing.assert_allclose(got, norm.logpdf(t, mu_in, s) - norm.logpdf(t, mu_out, s), rtol=1e-12)
    pooled = s * np.sqrt(2.0)
    np.testing.assert_allclose(
        lira_offline_scores(t, refs, ~in_mask), norm.logcdf((t - mu_out) / pooled), rtol=1e-12
    )
    # Views: the same data twice averages to the same score.
    np.testing.assert_allclose(
        lira_online_scores(np.stack([t, t]), np.stack([refs, refs]), in_mask, ~in_mask, per_record=True), got
    )


def test_lira_fixed_variance_is_the_authors_closed_form():
    # The authors' fix_variance=True (plot.py): medians per record, ONE sigma = np.std of all IN
    # values (records and references together) for both Gaussians; the score is then
    # (mu_in - mu_out) (2 phi - mu_in - mu_out) / (2 sigma^2), linear and increasing in phi.
    rng = np.random.default_rng(7)
    r, n = 9, 5
    refs = rng.normal(0.0, 1.0, (r, n)) + np.arange(n)  # records of different difficulty
    in_mask = np.zeros((r, n), dtype=bool)
    in_mask[:4] = True
    refs[in_mask] += 1.5
    t = np.linspace(-1, 6, n)
    mu_in = np.array([np.median(refs[:4, j]) for j in range(n)])
    mu_out = np.array([np.median(refs[4:, j]) for j in range(n)])
    sigma = refs[:4].std()  # over all IN values, not pooled within records, and the OUT Gaussian reuses it
    expected = (mu_in - mu_out) * (2 * t - mu_in - mu_out) / (2 * sigma**2)
    got = lira_online_scores(t, refs, in_mask, ~in_mask, variance="fixed", center="median")
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert not np.allclose(got, lira_online_scores(t, refs, in_mask, ~in_mask, center="median"))  # global: two sigmas
    # monotone in phi for every record: more confident, more member-like
    lo, hi = (lira_online_scores(t + d, refs, in_mask, ~in_mask, variance="fixed") for d in (0.0, 0.1))
    assert np.all(mu_in > mu_out) and np.all(hi > lo)
    # offline fixed: one sigma of all OUT values, the one-sided test of the paper
    sigma_out = refs[4:].std()
    np.testing.assert_allclose(lira_offline_scores(t, refs, ~in_mask, variance="fixed", center="median"),
                               norm.logcdf((t - mu_out) / sigma_out), rtol=1e-10)  # fmt: skip


def test_lira_options_are_checked_and_recorded():
    from miaudit.attacks.lira import resolve_variance

    assert resolve_variance("auto", 8) == "global" and resolve_variance("auto", 64) == "per-record"
    assert resolve_variance("fixed", 8) == "fixed"
    with pytest.raises(ConfigError, match="center must be one of mean, median"):
        ATTACKS.get("lira")(center="mode")
    with pytest.raises(ConfigError, match="variance must be one of"):
        ATTACKS.get("lira-offline")(variance="pooled")
    with pytest.raises(ConfigError, match="center"):
        lira_offline_scores(np.zeros(2), np.ones((2, 2)), center="trimmed")
    attack = ATTACKS.get("lira-offline")(variance="fixed", center="median")
    assert attack._details("offline", 4, "fixed", "none", 1)["variance"].startswith("fixed") and attack.center == "median"


def test_lira_offline_matches_the_normal_cdf():
    rng = np.random.default_rng(5)
    phi_out = rng.normal(0.0, 2.0, (5000, 30))
    t = np.linspace(-4, 4, 30)
    np.testing.assert_allclose(lira_offline_scores(t, phi_out), norm.logcdf(t / 2.0), atol=0.05)


def test_lira_refuses_records_without_references():
    refs = np.zeros((2, 3))
    in_mask = np.array([[True, True, False], [False, True, True]])
    with pytest.raises(ConfigError, match="reference models"):
        lira_online_scores(np.zeros(3), refs + np.arange(2)[:, None], in_mask, ~in_mask)


def test_first_per_record_keeps_k_of_each_kind():
    mask = np.array([[1, 0], [1, 1], [0, 1], [1, 1]], dtype=bool)
    np.testing.assert_array_equal(first_per_record(mask, 1), [[1, 0], [0, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(first_per_record(mask, 2).sum(axis=0), [2, 2])


def test_rmia_closed_form():
    p_refs = np.array([[0.25, 0.5], [0.75, 1.0]])  # exact in binary: no rounding at the ties
    pr_x = marginal(p_refs)  # online: the mean over references
    np.testing.assert_allclose(pr_x, [0.5, 0.75])
    ratio_x = likelihood_ratio(np.array([1.0, 0.75]), pr_x)
    np.testing.assert_allclose(ratio_x, [2.0, 1.0])
    ratio_z = np.array([0.5, 1.0, 1.5, 3.0])
    np.testing.assert_allclose(population_fraction(ratio_x, ratio_z, 1.0), [0.75, 0.5])
    np.testing.assert_allclose(population_fraction(ratio_x, ratio_z, 2.0), [0.5, 0.25])
    # Offline: only the masked (OUT) references, then the linear approximation.
    out = np.array([[True, False], [True, True]])
    np.testing.assert_allclose(marginal(p_refs, out, a=0.3), offline_marginal(np.array([0.5, 1.0]), 0.3))


def test_rmia_score_is_the_likelihood_ratio_rank():
    # With a fixed population the score is monotone in ratio(x): it ranks records by the likelihood ratio.
    rng = np.random.default_rng(6)
    ratio_x = rng.lognormal(size=200)
    score = population_fraction(ratio_x, rng.lognormal(size=5000))
    order = np.argsort(ratio_x)
    assert (np.diff(score[order]) >= 0).all()


def test_attack_r_closed_form():
    loss_refs = np.array([[1.0, 0.5], [2.0, 0.5], [3.0, 0.1], [4.0, 0.9]])
    got = attack_r_scores(np.array([2.0, 0.5]), loss_refs)
    resolution = 1 / (2 * 4**2)  # the tie-break term stays below the gap between p-values
    np.testing.assert_allclose(got, [(2 + 0.5) / 4, (1 + 0.5 * 2) / 4], atol=resolution)
    out = np.array([[True, True], [False, True], [True, False], [True, True]])
    got = attack_r_scores(np.array([2.0, 0.5]), loss_refs, out)
    np.testing.assert_allclose(got, [2 / 3, (1 + 0.5 * 2) / 3], atol=1 / (2 * 3**2))
    # Equal p-values: the lower target loss ranks higher.
    tied = attack_r_scores(np.array([0.1, 0.2]), np.full((3, 2), 5.0))
    assert tied[0] > tied[1] and ((tied >= 1.0) & (tied < 1.0 + 1 / (2 * 3**2))).all()


@pytest.mark.parametrize("gamma", [1.0, 2.0, 0.5])
def test_rmia_sorted_fraction_matches_brute_force(gamma):
    rng = np.random.default_rng(2)
    ratio_x = rng.lognormal(size=37)
    ratio_z = rng.lognormal(size=53)
    ratio_z[:5] = ratio_x[:5]  # ties, for gamma = 1
    brute = (ratio_x[:, None] / ratio_z[None, :] >= gamma).mean(axis=1)
    np.testing.assert_allclose(population_fraction(ratio_x, ratio_z, gamma), brute)


def test_rmia_offline_marginal():
    np.testing.assert_allclose(offline_marginal(np.array([0.0, 1.0, 0.5]), 0.3), [0.35, 1.0, 0.675])
    np.testing.assert_allclose(offline_marginal(np.array([0.2]), 1.0), [0.2])


REFERENCE_ATTACKS = ("lira", "lira-offline", "rmia", "rmia-offline", "attack-r")


def test_registered():
    assert set(REFERENCE_ATTACKS) <= set(ATTACKS.names())


def _digits_config(tmp_path, **overrides):
    from miaudit.experiments import AuditConfig

    base = dict(
        dataset="digits",
        attacks=REFERENCE_ATTACKS,
        recipe={"epochs": 4},
        n_shadow_models=4,
        n_bootstrap=0,
        cache_dir=str(tmp_path / "cache"),
    )
    return AuditConfig(**{**base, **overrides})


def test_digits_audit_runs_every_reference_attack_and_a_rerun_trains_nothing(tmp_path, monkeypatch):
    from miaudit.experiments import run_audit
    from miaudit.models.bank import ModelBank

    result = run_audit(_digits_config(tmp_path), progress=False)
    by_name = {o.result.attack: o.result for o in result.outcomes}
    assert set(by_name) == set(REFERENCE_ATTACKS)
    for r in by_name.values():
        assert len(r.scores) and np.isfinite(r.scores).all()
        assert r.details["reference_models"] == 4
    assert by_name["lira"].details["variant"] == "online" and by_name["lira-offline"].details["variant"] == "offline"
    for name in ("rmia", "rmia-offline"):
        assert ((by_name[name].scores >= 0) & (by_name[name].scores <= 1)).all()
        assert by_name[name].queries_per_record > 1  # the population was queried through TargetAccess
    assert by_name["lira"].queries_per_record == 1 and by_name["lira"].details["augmentation"] == "none"

    def refuse(*args, **kwargs):
        raise AssertionError("the second run trained a model")

    monkeypatch.setattr(ModelBank, "_train_chunk", refuse)
    again = run_audit(_digits_config(tmp_path), progress=False)
    for first, second in zip(result.outcomes, again.outcomes, strict=True):
        np.testing.assert_array_equal(first.result.scores, second.result.scores)


def test_online_attacks_need_two_reference_models(tmp_path):
    from miaudit.experiments import run_audit

    with pytest.raises(ConfigError, match="at least 2 reference models"):
        run_audit(_digits_config(tmp_path, attacks=("lira",), n_shadow_models=1), progress=False)


def test_online_references_are_in_for_half_of_the_models(tmp_path):
    from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
    from miaudit.attacks.reference_models import train_online_references
    from miaudit.threat import THREAT_MODELS

    rng = np.random.default_rng(3)
    pool_x, pool_y = rng.random((60, 5), dtype=np.float32), rng.integers(0, 3, 60)
    x, y = rng.random((20, 5), dtype=np.float32), rng.integers(0, 3, 20)
    knowledge = AttackerKnowledge(
        threat=THREAT_MODELS.get("gray-box"), num_classes=3, input_shape=(5,), seed=0,
        pool_x=pool_x, pool_y=pool_y, model=ModelSpec("random_forest", {}, recipe=object()),
    )  # fmt: skip
    refs = train_online_references(knowledge, x, y, 6)
    assert refs.in_candidates.shape == (6, 20) and refs.in_pool.shape == (6, 60)
    np.testing.assert_array_equal(refs.in_candidates.sum(axis=0), 3)


def test_online_references_train_on_the_targets_training_set_size(tmp_path):
    from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
    from miaudit.attacks.reference_models import train_online_references
    from miaudit.threat import THREAT_MODELS

    rng = np.random.default_rng(3)
    pool_x, pool_y = rng.random((60, 5), dtype=np.float32), rng.integers(0, 3, 60)
    x, y = rng.random((20, 5), dtype=np.float32), rng.integers(0, 3, 20)

    def references(train_size):
        knowledge = AttackerKnowledge(
            threat=THREAT_MODELS.get("gray-box"), num_classes=3, input_shape=(5,), seed=0, pool_x=pool_x, pool_y=pool_y,
            model=ModelSpec("random_forest", {}, recipe=object(), train_size=train_size),
        )  # fmt: skip
        return train_online_references(knowledge, x, y, 6)

    refs = references(25)  # the target trained on 25 records: 10 candidates + 15 pool records each
    sizes = refs.in_candidates.sum(axis=1) + refs.in_pool.sum(axis=1)
    np.testing.assert_array_equal(sizes, 25)
    np.testing.assert_array_equal(refs.in_candidates.sum(axis=0), 3)  # each candidate IN for one model of each pair
    np.testing.assert_array_equal(refs.in_candidates[0::2] ^ refs.in_candidates[1::2], True)
    np.testing.assert_array_equal(refs.out_candidates, ~refs.in_candidates)
    halves = references(None)  # size unknown: halves of all 80 records, twice the target's 25 and more
    np.testing.assert_array_equal(halves.in_candidates.sum(axis=1) + halves.in_pool.sum(axis=1), 40)
    small = references(6)  # fewer than half the 20 candidates: each model trains on its half of them, no pool record
    np.testing.assert_array_equal(small.in_candidates.sum(axis=1), 10)
    assert not small.in_pool.any()
    np.testing.assert_array_equal(small.in_candidates.sum(axis=0), 3)


def test_rmia_auto_a_is_chosen_on_shadow_models(tmp_path):
    from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
    from miaudit.attacks.rmia import RmiaOfflineAttack
    from miaudit.threat import THREAT_MODELS

    rng = np.random.default_rng(3)
    x = rng.random((400, 8), dtype=np.float32)
    y = rng.integers(0, 4, 400)
    knowledge = AttackerKnowledge(
        threat=THREAT_MODELS.get("gray-box"), num_classes=4, input_shape=(8,), seed=0,
        pool_x=x, pool_y=y, model=ModelSpec("random_forest", {}, recipe=object()), n_shadow_models=4,
    )  # fmt: skip
    attack = RmiaOfflineAttack(a="auto").fit(knowledge)
    assert 0.0 <= attack.a <= 1.0 and attack.a_source.startswith("auto (tuned")
    assert "stand-in" in attack.tuning["tuning"] and set(attack.tuning["tuned"]) == {"a"}
    knowledge2 = AttackerKnowledge(**{**knowledge.__dict__, "n_shadow_models": 2})
    fallback = RmiaOfflineAttack(a="auto").fit(knowledge2)
    assert fallback.a == 0.3 and "fallback" in fallback.a_source
    with pytest.raises(ConfigError):
        RmiaOfflineAttack(a=1.5)
