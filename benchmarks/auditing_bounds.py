"""Epsilon lower bounds on known-answer canaries, and what choosing on the reported scores adds.

Canaries: ``m`` fair coins released by exactly epsilon-DP randomized response
(``miaudit.auditing.simulate.randomized_response_canaries``), so the true epsilon is known.
For each epsilon, over ``--seeds`` seeds (the canaries and the selection split both follow the
seed), prints mean ± std of each bound and the share of seeds whose value exceeds the true
epsilon (a lower bound above it is wrong). Rows:

* ``cp split`` / ``one-run split``: the threshold / (k+, k-) chosen on a seeded half, the bound
  reported on the other half (miaudit's default).
* ``cp bonferroni``: a grid of 16 thresholds fixed in advance (evenly spaced on [0, 1.5), the
  simulator's score range) on all canaries, Bonferroni-corrected. ``one-run bonferroni``: the
  default (k+, k-) grid of ``one_run.guess_pairs(m)`` on all canaries, Bonferroni-corrected.
* ``cp same-data`` / ``one-run same-data``: the peers' practice (Privacy Meter's (k-, k+) search,
  TF Privacy's best of many thresholds): the best of the same candidates chosen and reported on
  the same scores, each candidate at the nominal confidence, no correction. Same formulae as the
  rows above, so the difference is the selection alone.
* ``one-run-fdp split`` / ``one-run-fdp same-data``: the f-DP one-run bound (Mahloujifar, Melis
  & Chaudhuri 2024) with the (epsilon, delta) trade-off family, on the same (k+, k-) grid and
  selection as the one-run rows.
* ``gdp split`` / ``gdp same-data``: the GDP estimate (Nasr et al. 2023) at ``--gdp-delta``; an
  estimate, not a bound. Randomized response is not Gaussian-shaped, so it is expected to be off.

Confidence 0.95, delta 0 for the bounds (randomized response is pure DP). Epsilon in nats.
Example: ``python benchmarks/auditing_bounds.py`` (about a minute on one core).

``--gaussian``: instead, Gaussian-mechanism canaries (``simulate.gaussian_canaries``, exactly
mu-GDP) at the mu whose epsilon at ``--gdp-delta`` is each ``--eps``; rows: Steinke et al.'s
one-run bound and the f-DP bound with the (epsilon, delta) family, both at that delta, the f-DP
bound with the Gaussian family (epsilon of the mu bound at that delta), and that mu bound itself
against the true mu. All with split selection.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from miaudit.auditing.clopper_pearson import (
    candidate_thresholds,
    clopper_pearson_bound,
    epsilon_per_threshold,
    threshold_counts,
)
from miaudit.auditing.fdp_one_run import fdp_one_run_bound, parameter_lower_bound
from miaudit.auditing.gdp import gdp_epsilon, gdp_estimate, gdp_mu, mu_at_counts
from miaudit.auditing.one_run import correct_guesses, epsilon_lower_bound, guess_pairs, one_run_bound, ranking
from miaudit.auditing.simulate import gaussian_canaries, randomized_response_canaries

CONFIDENCE = 0.95


def same_data_cp(scores: np.ndarray, coins: np.ndarray) -> float:
    """Best Clopper-Pearson value over the candidate thresholds, chosen and reported on all scores."""
    return float(np.max(epsilon_per_threshold(scores, coins, candidate_thresholds(scores, 200), CONFIDENCE, 0.0)))


def same_data_counts(scores: np.ndarray, coins: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Guess counts r and correct guesses v of every (k+, k-) of the default grid on all canaries."""
    order = ranking(scores, seed)
    pairs = guess_pairs(len(scores))
    r = np.array([a + b for a, b in pairs])
    return r, np.array([correct_guesses(order, coins, a, b) for a, b in pairs])


def same_data_one_run(scores: np.ndarray, coins: np.ndarray, seed: int) -> float:
    """Best one-run value over the default (k+, k-) grid, chosen and reported on all canaries."""
    r, v = same_data_counts(scores, coins, seed)
    return max(epsilon_lower_bound(len(scores), int(a), int(b), 0.0, CONFIDENCE) for a, b in zip(r, v))


def same_data_fdp(scores: np.ndarray, coins: np.ndarray, seed: int) -> float:
    """Best f-DP one-run value ((epsilon, delta) family, delta 0) over the default grid, chosen and reported on all canaries."""
    r, v = same_data_counts(scores, coins, seed)
    return float(np.max(parameter_lower_bound(len(scores), r, v, family="epsilon-delta", delta=0.0, confidence=CONFIDENCE)))


def same_data_gdp(scores: np.ndarray, coins: np.ndarray, delta: float) -> float:
    """GDP estimate at the threshold with the largest mu, chosen and reported on all scores."""
    mus = mu_at_counts(threshold_counts(scores, coins, candidate_thresholds(scores, 200)))
    return gdp_epsilon(float(np.max(mus)), delta)


def cell(v: np.ndarray, truth: float) -> str:
    """mean ± std and the share of seeds above the truth."""
    return f"{v.mean():6.2f} ± {v.std():4.2f} ({np.mean(v > truth):4.0%} >)"


def gaussian_table(args: argparse.Namespace) -> None:
    """Steinke et al.'s one-run bound against the f-DP bound on exactly mu-GDP canaries."""
    delta = args.gdp_delta
    rows = ("one-run split", "one-run-fdp (eps,delta) split", "one-run-fdp gaussian split", "  its mu bound")
    eps_list = [float(e) for e in args.eps.split(",")]
    print(f"Gaussian-mechanism canaries, m = {args.m}, {args.seeds} seeds, confidence {CONFIDENCE}, delta {delta:g}")
    print(f"{'method':<32}" + "".join(f"{f'eps = {e:g} (mu {gdp_mu(e, delta):.3f})':>26}" for e in eps_list))
    table: dict[str, list[str]] = {r: [] for r in rows}
    for eps in eps_list:
        mu = gdp_mu(eps, delta)
        values: dict[str, list[float]] = {r: [] for r in rows}
        for seed in range(args.seeds):
            s, c = gaussian_canaries(mu, args.m, seed)
            values[rows[0]].append(one_run_bound(s, c, confidence=CONFIDENCE, delta=delta, seed=seed).epsilon)
            values[rows[1]].append(fdp_one_run_bound(s, c, confidence=CONFIDENCE, delta=delta, seed=seed).epsilon)
            g = fdp_one_run_bound(s, c, confidence=CONFIDENCE, delta=delta, seed=seed, family="gaussian")
            values[rows[2]].append(g.epsilon)
            values[rows[3]].append(g.details["mu"])
        for r in rows:
            table[r].append(cell(np.array(values[r]), mu if r == rows[3] else eps))
    for r in rows:
        print(f"{r:<32}" + "".join(f"{c:>26}" for c in table[r]))
    print("(N% >): share of seeds whose value exceeds the true epsilon (the true mu for the mu row).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--eps", default="1,2,4,8")
    parser.add_argument("--gdp-delta", type=float, default=1e-5)
    parser.add_argument("--gaussian", action="store_true", help="Gaussian-mechanism canaries: Steinke et al. against f-DP")
    args = parser.parse_args()
    if args.gaussian:
        started = time.perf_counter()
        gaussian_table(args)
        print(f"{time.perf_counter() - started:.1f} s")
        return
    grid = np.linspace(0.0, 1.5, 16, endpoint=False)
    rows = ("cp split", "cp bonferroni", "cp same-data", "one-run split", "one-run bonferroni", "one-run same-data",
            "one-run-fdp split", "one-run-fdp same-data", "gdp split", "gdp same-data")  # fmt: skip
    started = time.perf_counter()
    print(f"m = {args.m} canaries, {args.seeds} seeds, confidence {CONFIDENCE}, delta 0 (GDP estimate at delta {args.gdp_delta:g})")
    print(f"{'method':<24}" + "".join(f"{'eps = ' + e:>24}" for e in args.eps.split(",")))
    table: dict[str, list[str]] = {r: [] for r in rows}
    for eps in (float(e) for e in args.eps.split(",")):
        values: dict[str, list[float]] = {r: [] for r in rows}
        for seed in range(args.seeds):
            s, c = randomized_response_canaries(eps, args.m, seed)
            values["cp split"].append(clopper_pearson_bound(s, c, confidence=CONFIDENCE, seed=seed).epsilon)
            values["cp bonferroni"].append(clopper_pearson_bound(s, c, confidence=CONFIDENCE, selection="bonferroni", grid=grid).epsilon)
            values["cp same-data"].append(same_data_cp(s, c))
            values["one-run split"].append(one_run_bound(s, c, confidence=CONFIDENCE, seed=seed).epsilon)
            values["one-run bonferroni"].append(one_run_bound(s, c, confidence=CONFIDENCE, selection="bonferroni", seed=seed).epsilon)
            values["one-run same-data"].append(same_data_one_run(s, c, seed))
            values["one-run-fdp split"].append(fdp_one_run_bound(s, c, confidence=CONFIDENCE, seed=seed).epsilon)
            values["one-run-fdp same-data"].append(same_data_fdp(s, c, seed))
            values["gdp split"].append(gdp_estimate(s, c, delta=args.gdp_delta, seed=seed).epsilon)
            values["gdp same-data"].append(same_data_gdp(s, c, args.gdp_delta))
        for r in rows:
            table[r].append(cell(np.array(values[r]), eps))
    for r in rows:
        print(f"{r:<24}" + "".join(f"{cell:>24}" for cell in table[r]))
    print("(N% >): share of seeds whose value exceeds the true epsilon.")
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
