"""Canary separation in one-run audits on Location30: non-private vs DP-SGD at several epsilons,
and the fault-injected DP-SGD (claims a noise multiplier, adds a tenth of it).

One seeded permutation of the 5010 records: the first ``--base`` are the base training set, the
next records are the held-out pool the ``--m`` canaries (``--kind``, default mislabelled) are
drawn from; each canary is IN with probability 1/2 (seeded coins). Each row trains ONE MLP
(miaudit's Location30 default; DP-SGD with :data:`miaudit.defenses.dpsgd.DP_RECIPE`, PRV
accountant, delta 1e-5) and reports the loss attack's AUC over the m canaries' coins (log p_y,
no reference models), the accountant's epsilon (claimed, for the fault rows), the epsilon of the
noise really added, and seconds. ``--gradient`` adds, under each DP row, the same DP-SGD
with m Dirac gradient canaries instead (white box: score theta_0[j] - theta_T[j]; the base
records alone are trained on). ``--multi-runs R`` adds the classical audit's row: R
non-private models in one ModelBank, the seed's first canary IN on each run's coin, AUC over the
R coins. Example:
``python benchmarks/auditing_canaries.py --base 1000 --m 500 --eps 1/4/8 --seeds 0``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from miaudit.auditing.canaries import make_canaries
from miaudit.auditing.runs import AuditTraining, DPTraining, multi_run, one_run, one_run_gradient
from miaudit.data import load_dataset
from miaudit.metrics import auc

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _numbers(text: str) -> list[float]:
    """Slash-separated numbers; '' gives none."""
    return [float(v) for v in text.split("/") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=1000, help="base training records")
    parser.add_argument("--m", type=int, default=500, help="canaries")
    parser.add_argument("--kind", default="mislabelled", help="canary kind (miaudit.auditing.canaries.CANARY_KINDS)")
    parser.add_argument("--eps", default="1/4/8", help="DP-SGD target epsilons, slash-separated")
    parser.add_argument("--fault", default="1", help="target epsilons also run with the noise/10 fault, slash-separated ('' for none)")
    parser.add_argument("--seeds", default="0", help="seeds (canaries, coins, model), slash-separated")
    parser.add_argument("--gradient", action="store_true", help="also Dirac gradient canaries (m of them, white box) for every DP row")
    parser.add_argument("--multi-runs", type=int, default=0, help="also the multi-run audit: R non-private models (ModelBank), one canary")
    args = parser.parse_args()
    ds = load_dataset("location30", os.environ.get("MIAUDIT_DATA_DIR") or SHARED_DATA, download=False)
    rows: list[tuple[str, float | None, DPTraining | None]] = [("non-private", None, None)]
    rows += [(f"dpsgd eps {e:g}", e, DPTraining(epsilon=e)) for e in _numbers(args.eps)]
    rows += [(f"FAULT eps {e:g} noise/10", e, DPTraining(epsilon=e, noise_divisor=10)) for e in _numbers(args.fault)]
    print(f"Location30, {args.base} base records + m={args.m} {args.kind} canaries (coins 1/2), MLP, loss attack (log p_y)")
    print(f"{'training':<28} {'seed':>4} {'IN':>4} {'AUC':>6} {'eps (accountant)':>17} {'eps of real noise':>18} {'s':>6}")
    for seed in map(int, args.seeds.split("/")):
        perm = np.random.default_rng(seed).permutation(len(ds.y))
        base, held = perm[: args.base], perm[args.base :]
        canaries = make_canaries(args.kind, ds.x[held], ds.y[held], args.m, seed, num_classes=ds.num_classes)
        for label, _, dp in rows:
            start = time.perf_counter()
            result = one_run(ds.x[base], ds.y[base], canaries, num_classes=ds.num_classes, seed=seed, training=AuditTraining(dp=dp))
            seconds = time.perf_counter() - start
            report = result.info.get("dpsgd", {})
            eps = "-" if result.epsilon is None else f"{result.epsilon:.3f}"
            real = report.get("epsilon_of_actual_noise", result.epsilon)
            real_s = "-" if real is None else f"{real:.3f}"
            print(f"{label:<28} {seed:>4} {int(canaries.coins.sum()):>4} {auc(result.scores, canaries.coins):>6.3f} {eps:>17} {real_s:>18} {seconds:>6.1f}", flush=True)
            if args.gradient and dp is not None:
                start = time.perf_counter()
                grad = one_run_gradient(ds.x[base], ds.y[base], args.m, num_classes=ds.num_classes, dp=dp, seed=seed)
                seconds = time.perf_counter() - start
                real = grad.info.get("epsilon_of_actual_noise", grad.epsilon)
                print(f"{'  dirac ' + label:<28} {seed:>4} {int(grad.coins.sum()):>4} {auc(grad.scores, grad.coins):>6.3f} {grad.epsilon:>17.3f} {real:>18.3f} {seconds:>6.1f}", flush=True)
        if args.multi_runs:
            start = time.perf_counter()
            multi = multi_run(
                ds.x[base], ds.y[base], canaries.x[:1], canaries.y[:1], runs=args.multi_runs,
                num_classes=ds.num_classes, seed=seed, kind=args.kind,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            label = f"multi-run R={args.multi_runs}"
            print(f"{label:<28} {seed:>4} {int(multi.coins.sum()):>4} {auc(multi.scores, multi.coins):>6.3f} {'-':>17} {'-':>18} {seconds:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
