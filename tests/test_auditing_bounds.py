"""Epsilon lower bounds from membership scores (miaudit.auditing): known answers, selection, inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from miaudit.auditing import BOUNDS, BoundResult
from miaudit.auditing.base import split_halves
from miaudit.auditing.clopper_pearson import clopper_pearson_bound, cp_interval, cp_upper
from miaudit.auditing.gdp import gdp_delta, gdp_epsilon, gdp_estimate, mu_from_rates
from miaudit.auditing.one_run import epsilon_lower_bound, one_run_bound, p_value
from miaudit.auditing.simulate import randomized_response_canaries as randomized_response
from miaudit.errors import ConfigError, InputError


def test_registry_names_the_methods() -> None:
    assert BOUNDS.names() == ["clopper-pearson", "gdp", "one-run", "one-run-fdp"]


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (17, 50), (1, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_clopper_pearson_matches_scipy(k: int, n: int, confidence: float) -> None:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    lo, hi = cp_interval(k, n, confidence)
    assert lo == pytest.approx(ci.low, abs=1e-12)
    assert hi == pytest.approx(ci.high, abs=1e-12)
    one_sided = stats.binomtest(k, n, alternative="less").proportion_ci(confidence_level=confidence, method="exact")
    assert float(cp_upper(k, n, confidence)) == pytest.approx(one_sided.high, abs=1e-12)


def test_clopper_pearson_fixed_threshold_by_hand() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.3, 0.05])
    member = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    r = clopper_pearson_bound(scores, member, threshold=0.65, selection="fixed", confidence=0.9, delta=0.01)
    assert r.counts == {"tp": 3, "fp": 0, "fn": 1, "tn": 4}
    fpr_hi = float(cp_upper(0, 4, 0.95))
    fnr_hi = float(cp_upper(1, 4, 0.95))
    want = max(math.log((1 - 0.01 - fnr_hi) / fpr_hi), math.log(max(1 - 0.01 - fpr_hi, 1e-300) / fnr_hi), 0.0)
    assert r.epsilon == pytest.approx(want, rel=1e-12)
    assert r.kind == "lower bound" and r.confidence == 0.9 and r.selection == "fixed"


@pytest.mark.parametrize("eps", [1.0, 3.0])
def test_bounds_cover_randomized_response(eps: float) -> None:
    seeds = range(20)
    confidence = 0.95
    for method in ("clopper-pearson", "one-run"):
        values = [BOUNDS.get(method)(*randomized_response(eps, 500, s), confidence=confidence, seed=s).epsilon for s in seeds]
        assert np.mean(np.array(values) <= eps) >= confidence, (method, values)


def test_bounds_approach_epsilon_with_many_canaries() -> None:
    eps = 2.0
    cp = clopper_pearson_bound(*randomized_response(eps, 40_000, 1), confidence=0.95)
    assert 0.9 * eps <= cp.epsilon <= eps
    one = one_run_bound(*randomized_response(eps, 40_000, 2), confidence=0.95)
    assert 0.8 * eps <= one.epsilon <= eps


def test_perfect_separation_hits_the_cap() -> None:
    confidence, delta = 0.95, 1e-3
    coins = np.arange(400) % 3 == 0
    scores = coins + 0.1 * np.random.default_rng(0).random(400)
    r = clopper_pearson_bound(scores, coins, confidence=confidence, delta=delta, seed=3)
    n_mem, n_non = r.counts["tp"] + r.counts["fn"], r.counts["fp"] + r.counts["tn"]
    assert r.counts["fn"] == 0 and r.counts["fp"] == 0
    a = (1 - confidence) / 2  # per side
    fnr_hi, fpr_hi = 1 - a ** (1 / n_mem), 1 - a ** (1 / n_non)
    cap = max(math.log((1 - delta - fnr_hi) / fpr_hi), math.log((1 - delta - fpr_hi) / fnr_hi))
    assert r.epsilon == pytest.approx(cap, rel=1e-9)
    # one run, delta = 0: all m guesses right; P[Binomial(m, q) >= m] = q^m = 1 - confidence
    m = len(coins)
    one = one_run_bound(scores, coins, confidence=confidence, selection="fixed", k_plus=int(coins.sum()), k_minus=int((~coins).sum()))
    assert one.counts == {"m": m, "r": m, "v": m}
    assert one.epsilon == pytest.approx(float(special.logit((1 - confidence) ** (1 / m))), abs=1e-8)
    split = one_run_bound(scores, coins, confidence=confidence, seed=3)
    assert split.counts["v"] == split.counts["r"]
    assert split.epsilon == pytest.approx(float(special.logit((1 - confidence) ** (1 / split.counts["r"]))), abs=1e-8)


def test_no_signal_gives_a_bound_near_zero() -> None:
    rng = np.random.default_rng(5)
    for s in range(5):
        scores, coins = rng.random(2000), rng.random(2000) < 0.5
        assert clopper_pearson_bound(scores, coins, seed=s).epsilon <= 0.15
        assert one_run_bound(scores, coins, seed=s).epsilon <= 0.15


def test_selection_never_looks_at_the_reporting_half() -> None:
    scores, coins = randomized_response(2.0, 600, 7)
    rng = np.random.default_rng(0)
    for method, stratify in (("clopper-pearson", True), ("gdp", True), ("one-run", False)):
        f = BOUNDS.get(method)
        _, report = split_halves(coins, 11, stratify=stratify)
        changed = scores.copy()
        changed[report] = rng.normal(size=len(report)) * 10
        a, b = f(scores, coins, seed=11), f(changed, coins, seed=11)
        assert {k: v for k, v in a.choice.items()} == {k: v for k, v in b.choice.items()}, method
        assert a.counts != b.counts  # the reported counts do come from the reporting half


def test_bonferroni_level_and_grid() -> None:
    scores, coins = randomized_response(2.0, 1000, 3)
    grid = np.linspace(0.2, 1.3, 12)
    r = clopper_pearson_bound(scores, coins, selection="bonferroni", grid=grid, confidence=0.95)
    assert r.details["per_test_confidence"] == pytest.approx(1 - 0.05 / 12)
    assert r.choice["threshold"] in grid
    single = clopper_pearson_bound(scores, coins, selection="bonferroni", grid=np.array([r.choice["threshold"]]), confidence=0.95)
    assert single.epsilon >= r.epsilon
    one = one_run_bound(scores, coins, selection="bonferroni", grid=[(50, 50), (100, 100)], confidence=0.95)
    assert one.details["per_test_confidence"] == pytest.approx(0.975)


def test_one_run_p_value_and_bound() -> None:
    # delta = 0: the p-value is the binomial tail, the bound solves it for q = e^eps / (1 + e^eps)
    m, r, v, c = 1000, 200, 170, 0.95
    assert p_value(m, r, v, 1.0, 0.0) == pytest.approx(stats.binom.sf(v - 1, r, special.expit(1.0)))
    q = optimize.brentq(lambda q: stats.binom.sf(v - 1, r, q) - (1 - c), 0.5, 1 - 1e-12)
    assert epsilon_lower_bound(m, r, v, 0.0, c) == pytest.approx(float(special.logit(q)), abs=1e-7)
    # delta > 0 only adds the 2 m delta max_i P[v > B >= v - i] / i term, so the bound falls
    i = np.arange(1, v + 1)
    qq = special.expit(1.0)
    extra = np.max(np.cumsum(stats.binom.pmf(v - i, r, qq)) / i) * 2 * m * 1e-4
    assert p_value(m, r, v, 1.0, 1e-4) == pytest.approx(min(stats.binom.sf(v - 1, r, qq) + extra, 1.0))
    assert epsilon_lower_bound(m, r, v, 1e-4, c) < epsilon_lower_bound(m, r, v, 0.0, c)


def test_gdp_round_trips() -> None:
    mu, t = 1.5, 0.7
    fpr, fnr = 1 - stats.norm.cdf(t), stats.norm.cdf(t - mu)
    assert float(mu_from_rates(fpr, fnr)) == pytest.approx(mu, abs=1e-12)
    for mu in (0.3, 1.0, 2.0, 5.0):
        for delta in (1e-6, 1e-5, 1e-2):
            eps = gdp_epsilon(mu, delta)
            assert gdp_delta(eps, mu) == pytest.approx(delta, rel=1e-6)
            direct = stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)
            assert gdp_delta(eps, mu) == pytest.approx(direct, rel=1e-6, abs=1e-15)
    assert gdp_epsilon(0.0, 1e-5) == 0.0


def test_gdp_estimate_is_labelled_an_estimate() -> None:
    r = gdp_estimate(*randomized_response(1.0, 2000, 0), delta=1e-5)
    assert isinstance(r, BoundResult) and r.kind == "estimate" and math.isnan(r.confidence)
    assert r.details["mu"] > 0 and r.epsilon == pytest.approx(gdp_epsilon(r.details["mu"], 1e-5))


@pytest.mark.parametrize(
    "call,error",
    [
        (lambda s, c: clopper_pearson_bound(np.where(np.arange(len(s)) == 3, np.nan, s), c), InputError),
        (lambda s, c: one_run_bound(s, c.astype(int) * 2), InputError),
        (lambda s, c: one_run_bound(s[:-1], c), InputError),
        (lambda s, c: clopper_pearson_bound(s, c, confidence=0.0), ConfigError),
        (lambda s, c: one_run_bound(s, c, confidence=1.0), ConfigError),
        (lambda s, c: clopper_pearson_bound(s, c, confidence=1.5), ConfigError),
        (lambda s, c: clopper_pearson_bound(s, c, delta=-0.1), ConfigError),
        (lambda s, c: one_run_bound(s, c, delta=1.0), ConfigError),
        (lambda s, c: gdp_estimate(s, c, delta=0.0), ConfigError),
        (lambda s, c: clopper_pearson_bound(s, c, selection="best"), ConfigError),
        (lambda s, c: clopper_pearson_bound(s, c, selection="bonferroni"), ConfigError),
        (lambda s, c: one_run_bound(s, c, selection="fixed", k_plus=500, k_minus=600), ConfigError),
    ],
)
def test_bad_inputs_are_one_line_errors(call, error) -> None:
    scores, coins = randomized_response(1.0, 1000, 0)
    with pytest.raises(error) as info:
        call(scores, coins)
    assert "\n" not in str(info.value)
