"""AUC, TPR at 1% FPR and wall-clock seconds per attack on one audit (one seed, fresh models).

Runs the audit `miaudit audit --dataset D --attacks A,B,... --seed S --no-cache` runs, attack by
attack, timing each attack's fit and scoring (shadow / reference / distilled models included,
the target's training excluded), and prints a markdown table.

    MIAUDIT_DATA_DIR=../shared/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/attack_seconds.py \
        --dataset location30 --attacks loss-trajectory,loss,rmia [--attack-option qmia:cross_fit=5] \
        [--reference-models 16]

``--reference-models`` is the audit's (shadow models and online references; default the audit's).
"""

from __future__ import annotations

import argparse
import time

from miaudit.cli.audit_cmd import parse_attack_options
from miaudit.experiments import AuditConfig
from miaudit.experiments.audit import prepare_audit, run_attack


def main() -> None:
    """Parse the arguments, run each attack, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="location30")
    parser.add_argument("--attacks", default="loss-trajectory,loss,rmia")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-models", type=int, default=None, help="as miaudit audit's (default: the audit's)")
    parser.add_argument("--attack-option", action="append", default=[], metavar="ATTACK:KEY=VALUE", help="as miaudit audit's (repeatable)")
    args = parser.parse_args()
    attacks = tuple(a for a in args.attacks.split(",") if a)
    models = {} if args.reference_models is None else {"n_shadow_models": args.reference_models}
    config = AuditConfig(dataset=args.dataset, attacks=attacks, seed=args.seed, n_bootstrap=0, use_cache=False,
                         attack_options=parse_attack_options(args.attack_option), **models)  # fmt: skip
    setup = prepare_audit(config, progress=False)
    try:
        print(f"target: train accuracy {setup.train_accuracy:.3f}, test accuracy {setup.test_accuracy:.3f}; "
              f"{int(setup.is_member.sum())} members, {int((~setup.is_member).sum())} non-members evaluated")  # fmt: skip
        print("| attack | AUC | TPR@1%FPR | seconds |\n|---|---|---|---|")
        for name in setup.permitted:
            started = time.perf_counter()
            outcome = run_attack(setup, name)
            seconds = time.perf_counter() - started
            if isinstance(outcome, str):
                print(f"| {name} | skipped: {outcome} | | |")
                continue
            tpr = outcome.metrics.tpr_at_fpr.get(0.01)
            print(f"| {name} | {outcome.metrics.auc:.3f} | {'n/a' if tpr is None else f'{tpr:.3f}'} | {seconds:.0f} |")
    finally:
        setup.close()


if __name__ == "__main__":
    main()
