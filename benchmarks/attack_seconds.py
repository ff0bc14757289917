"""AUC, TPR at 1% FPR, queries per record and wall-clock seconds per attack on one audit per seed.

Runs the audit `miaudit audit --dataset D --attacks A,B,... --seed S --no-cache` runs, attack by
attack, timing each attack's fit and scoring (shadow / reference / distilled models included,
the target's training excluded), and prints a markdown table: the value for one seed, or the
mean ± std over several (``--seeds 0 1 2``; each seed is its own split, target and attacker).

    MIAUDIT_DATA_DIR=../shared/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/attack_seconds.py \
        --dataset location30 --attacks loss-trajectory,loss,rmia [--attack-option qmia:cross_fit=5] \
        [--reference-models 16] [--seeds 0 1 2] [--threat-model gray-box] [--records 500]

``--reference-models`` is the audit's (shadow models and online references; default the audit's);
``--records N`` cuts the split to N members, N non-members and a pool of 2N (a CPU budget).
Queries per record count every record the attack sent to the target (its pool or population
included) divided by the records it scored.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from miaudit.cli.audit_cmd import parse_attack_options
from miaudit.data.split import SplitSizes
from miaudit.experiments import AuditConfig
from miaudit.experiments.audit import prepare_audit, run_attack


def one_seed(args: argparse.Namespace, seed: int) -> dict[str, tuple[float, float | None, float, float] | str]:
    """Per attack: (AUC, TPR@1%FPR or None, queries per record, seconds), or why it was skipped."""
    attacks = tuple(a for a in args.attacks.split(",") if a)
    extra: dict = {} if args.reference_models is None else {"n_shadow_models": args.reference_models}
    if args.records is not None:
        extra["split"] = SplitSizes(args.records, args.records, 2 * args.records, 0)
    config = AuditConfig(dataset=args.dataset, attacks=attacks, seed=seed, n_bootstrap=0, use_cache=False,
                         threat_model=args.threat_model, attack_options=parse_attack_options(args.attack_option),
                         **extra)  # fmt: skip
    setup = prepare_audit(config, progress=False)
    rows: dict[str, tuple[float, float | None, float, float] | str] = {}
    try:
        print(f"seed {seed}: target train accuracy {setup.train_accuracy:.3f}, test accuracy {setup.test_accuracy:.3f}; "
              f"{int(setup.is_member.sum())} members, {int((~setup.is_member).sum())} non-members evaluated", flush=True)  # fmt: skip
        for name in setup.permitted:
            started = time.perf_counter()
            outcome = run_attack(setup, name)
            seconds = time.perf_counter() - started
            if isinstance(outcome, str):
                rows[name] = outcome
                continue
            if outcome.result.details.get("tuned"):
                print(f"seed {seed}: {name} tuned {outcome.result.details['tuned']}", flush=True)
            tpr = outcome.metrics.tpr_at_fpr.get(0.01)
            rows[name] = (outcome.metrics.auc, tpr, outcome.result.queries_per_record, seconds)
    finally:
        setup.close()
    return rows


def _cell(values: list[float | None], digits: int) -> str:
    if any(v is None for v in values):
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def main() -> None:
    """Parse the arguments, run each attack for each seed, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="location30")
    parser.add_argument("--attacks", default="loss-trajectory,loss,rmia")
    parser.add_argument("--seed", type=int, default=None, help="one seed (as --seeds S)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threat-model", default="gray-box")
    parser.add_argument("--reference-models", type=int, default=None, help="as miaudit audit's (default: the audit's)")
    parser.add_argument("--records", type=int, default=None, help="members (= non-members; pool 2x); default: the audit's split")
    parser.add_argument("--attack-option", action="append", default=[], metavar="ATTACK:KEY=VALUE", help="as miaudit audit's (repeatable)")
    args = parser.parse_args()
    seeds = [args.seed] if args.seed is not None else args.seeds
    per_seed = [one_seed(args, s) for s in seeds]
    print(f"\n| attack | AUC | TPR@1%FPR | queries/record | seconds |  ({len(seeds)} seed(s): {' '.join(map(str, seeds))})")
    print("|---|---|---|---|---|")
    for name in per_seed[0]:
        runs = [rows[name] for rows in per_seed]
        if any(isinstance(r, str) for r in runs):
            print(f"| {name} | skipped: {next(r for r in runs if isinstance(r, str))} | | | |")
            continue
        auc, tpr, queries, seconds = zip(*runs)
        print(f"| {name} | {_cell(list(auc), 3)} | {_cell(list(tpr), 3)} | {_cell(list(queries), 2)} | {_cell(list(seconds), 0)} |")


if __name__ == "__main__":
    main()
