"""The f-DP one-run bound (miaudit.auditing.fdp_one_run): the recursion by a second route, known
answers, soundness on exactly-DP canaries, the comparison with Steinke et al.'s bound, inputs."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import special

from miaudit.auditing import BOUNDS
from miaudit.auditing.base import split_halves
from miaudit.auditing.fdp_one_run import fdp_one_run_bound, parameter_lower_bound, rejects
from miaudit.auditing.gdp import gdp_epsilon, gdp_mu
from miaudit.auditing.one_run import epsilon_lower_bound, one_run_bound
from miaudit.auditing.simulate import gaussian_canaries
from miaudit.auditing.simulate import randomized_response_canaries as randomized_response
from miaudit.errors import ConfigError

N = NormalDist()


def trade_off_inverse(y: float, family: str, p: float, delta: float) -> float:
    """(1 - f)^{-1}(y) written from the trade-off functions themselves (stdlib normal, no scipy)."""
    if family == "gaussian":  # 1 - f_mu(x) = Phi(Phi^{-1}(x) + mu)
        return 0.0 if y <= 0 else 1.0 if y >= 1 else N.cdf(N.inv_cdf(y) - p)
    # 1 - f(x) = min(1, delta + e^p x, 1 - e^-p (1 - delta - x)): invert each increasing piece
    return max(0.0, (y - delta) * math.exp(-p), 1.0 - delta - math.exp(p) * (1.0 - y))


def rejects_by_hand(m: int, k: int, v: int, p: float, family: str, delta: float, confidence: float) -> bool:
    """The paper's recursion as plain lists, every step taken (no early stop, no arrays)."""
    tau = 1.0 - confidence
    r = [0.0] * (v + 1)
    h = [0.0] * (v + 1)
    r[v], h[v] = tau * v / m, tau * (k - v) / m
    for i in range(v - 1, -1, -1):
        h[i] = max(h[i + 1], trade_off_inverse(r[i + 1], family, p, delta))
        r[i] = min(r[i + 1] + i / (k - i) * (h[i] - h[i + 1]), 1.0)
    return r[0] + h[0] > k / m


@pytest.mark.parametrize("family,delta", [("epsilon-delta", 0.0), ("epsilon-delta", 1e-3), ("gaussian", 0.0)])
def test_recursion_matches_the_paper_by_hand(family: str, delta: float) -> None:
    cases = [(40, 10, 9), (40, 20, 15), (60, 60, 45), (30, 30, 30), (50, 5, 5), (50, 25, 12)]
    params = [0.0, 0.2, 0.5, 1.0, 2.0, 3.5]
    for m, k, v in cases:
        got = rejects(m, np.full(len(params), k), np.full(len(params), v), np.array(params), family=family, delta=delta, confidence=0.9)
        want = [rejects_by_hand(m, k, v, p, family, delta, 0.9) for p in params]
        assert list(got) == want, (m, k, v)
        # the search's result is a rejected parameter, and a slightly larger one is not rejected
        bound = float(parameter_lower_bound(m, k, v, family=family, delta=delta, confidence=0.9)[0])
        if bound > 0:
            assert rejects_by_hand(m, k, v, bound, family, delta, 0.9)
            assert not rejects_by_hand(m, k, v, bound + 1e-6, family, delta, 0.9)
        else:
            assert not rejects_by_hand(m, k, v, 1e-6, family, delta, 0.9)


def test_perfect_guesses_reach_the_maximum_and_more_correct_guesses_raise_the_bound() -> None:
    m, c = 400, 0.95
    # all m guessed right under pure DP: the largest eps rejected solves q^m = 1 - confidence,
    # q = e^eps / (1 + e^eps), the same cap as Steinke et al.'s bound
    got = float(parameter_lower_bound(m, m, m, family="epsilon-delta", delta=0.0, confidence=c)[0])
    assert got == pytest.approx(float(special.logit((1 - c) ** (1 / m))), abs=1e-6)
    for family in ("epsilon-delta", "gaussian"):
        v = np.arange(100, 201, 5)
        b = parameter_lower_bound(m, np.full(len(v), 200), v, family=family, delta=1e-5, confidence=c)
        assert np.all(np.diff(b) >= 0) and b[-1] > b[len(b) // 2] > 0, (family, b)
        assert b[0] == 0.0  # half right: no evidence
        # the perfect score on r guesses is the family's maximum at r
        assert b[-1] == np.max(parameter_lower_bound(m, np.full(5, 200), np.arange(196, 201), family=family, delta=1e-5, confidence=c))


def test_against_steinke_on_counts() -> None:
    """Pure DP: Steinke et al.'s binomial tail is exact for randomized response, the f-DP recursion
    (a relaxation for general f) gives slightly less; with delta > 0 and few guesses the f-DP
    analysis of delta beats their 2 m delta term."""
    m, c = 1000, 0.95
    for r, v in ((100, 90), (200, 170), (500, 400), (1000, 700)):
        fdp = float(parameter_lower_bound(m, r, v, family="epsilon-delta", delta=0.0, confidence=c)[0])
        steinke = epsilon_lower_bound(m, r, v, 0.0, c)
        assert 0.97 * steinke <= fdp <= steinke, (r, v, fdp, steinke)
    fdp = float(parameter_lower_bound(m, 50, 50, family="epsilon-delta", delta=1e-5, confidence=c)[0])
    assert fdp > epsilon_lower_bound(m, 50, 50, 1e-5, c) + 0.02


@pytest.mark.parametrize("eps", [1.0, 3.0])
def test_epsilon_delta_family_covers_randomized_response(eps: float) -> None:
    confidence = 0.95
    values = [fdp_one_run_bound(*randomized_response(eps, 500, s), confidence=confidence, seed=s).epsilon for s in range(20)]
    assert np.mean(np.array(values) <= eps) >= confidence, values
    assert np.mean(values) > 0.4 * eps  # and it is not vacuous


def test_gaussian_canaries_and_mu_at_epsilon() -> None:
    for eps in (1.0, 4.0, 8.0):
        assert gdp_epsilon(gdp_mu(eps, 1e-5), 1e-5) == pytest.approx(eps, rel=1e-9)
    scores, coins = gaussian_canaries(1.5, 20_000, 0)
    assert scores[coins].mean() - scores[~coins].mean() == pytest.approx(1.5, abs=0.05)
    assert scores[~coins].std() == pytest.approx(1.0, abs=0.03)


def test_gaussian_family_covers_gaussian_canaries_and_beats_steinke() -> None:
    delta, confidence = 1e-5, 0.95
    mu = gdp_mu(4.0, delta)
    mus, fdp, steinke = [], [], []
    for s in range(12):
        scores, coins = gaussian_canaries(mu, 1000, s)
        g = fdp_one_run_bound(scores, coins, confidence=confidence, delta=delta, seed=s, family="gaussian")
        mus.append(g.details["mu"])
        fdp.append(g.epsilon)
        steinke.append(one_run_bound(scores, coins, confidence=confidence, delta=delta, seed=s).epsilon)
    assert np.mean(np.array(mus) <= mu) >= confidence, (mu, mus)
    assert np.all(np.array(fdp) <= 4.0 + 1e-9)
    # the paper's claim on Gaussian mechanisms: the Gaussian trade-off gives a tighter epsilon
    assert np.mean(fdp) > 1.3 * np.mean(steinke), (np.mean(fdp), np.mean(steinke))


def test_result_fields_and_selection() -> None:
    scores, coins = gaussian_canaries(2.0, 600, 3)
    r = BOUNDS.get("one-run-fdp")(scores, coins, delta=1e-5, family="gaussian", selection="bonferroni", grid=[(50, 50), (100, 100)])
    assert r.kind == "lower bound" and r.method == "one-run-fdp" and "Mahloujifar" in r.paper
    assert r.details["family"] == "gaussian" and r.details["per_test_confidence"] == pytest.approx(0.975)
    assert r.epsilon == pytest.approx(gdp_epsilon(r.details["mu"], 1e-5))
    assert r.counts["m"] == 600 and (r.choice["k_plus"], r.choice["k_minus"]) in ((50, 50), (100, 100))
    e = fdp_one_run_bound(scores, coins, selection="fixed", k_plus=60, k_minus=40)
    assert e.details["family"] == "epsilon-delta" and "mu" not in e.details and e.counts["r"] == 100
    # split: the reporting half's scores do not change the choice, only the reported counts
    _, report = split_halves(coins, 11, stratify=False)
    changed = scores.copy()
    changed[report] = np.random.default_rng(0).normal(size=len(report)) * 10
    a, b = fdp_one_run_bound(scores, coins, seed=11), fdp_one_run_bound(changed, coins, seed=11)
    assert a.choice == b.choice and a.counts != b.counts


@pytest.mark.parametrize(
    "kwargs",
    [{"confidence": 1.0}, {"confidence": 0.0}, {"delta": -0.1}, {"delta": 1.0}, {"family": "laplace"},
     {"family": "gaussian"}, {"family": "gaussian", "delta": 0.0}, {"selection": "best"},
     {"selection": "fixed", "k_plus": 5}, {"selection": "fixed", "k_plus": 400, "k_minus": 400}],
)  # fmt: skip
def test_bad_inputs_are_one_line_config_errors(kwargs: dict) -> None:
    scores, coins = randomized_response(1.0, 500, 0)
    with pytest.raises(ConfigError) as err:
        fdp_one_run_bound(scores, coins, **kwargs)
    assert "\n" not in str(err.value)
