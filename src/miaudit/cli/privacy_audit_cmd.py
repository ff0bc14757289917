"""``miaudit privacy-audit``: an empirical epsilon lower bound from canaries, beside the accountant's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from miaudit.cli.common import COMMANDS, Command, add_data_dir_flag, add_output_flags, claimed_out, console


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="location30", help="a registered data set (default location30)")
    p.add_argument("--mode", default="one-run", help="one-run (m canaries, one model) or multi-run (R models, one canary)")
    p.add_argument("--canary-kind", default="ood",
                   help="ood, mislabelled, natural (records), or dirac (white-box gradient canaries in DP-SGD); default ood")
    p.add_argument("--canaries", type=int, default=1000, help="one-run: canaries, each IN with probability 1/2 (default 1000)")
    p.add_argument("--runs", type=int, default=64, help="multi-run: models trained (default 64)")
    p.add_argument("--base-records", type=int, default=1000, help="non-canary training records (default 1000)")
    dp = p.add_mutually_exclusive_group()
    dp.add_argument("--epsilon", type=float, default=None, help="train with DP-SGD (Opacus) at this epsilon; default non-private")
    dp.add_argument("--noise-multiplier", type=float, default=None, help="train with DP-SGD at this noise multiplier")
    p.add_argument("--delta", type=float, default=1e-5, help="DP-SGD's delta, and the bounds' (default 1e-5)")
    p.add_argument("--attack", default=None,
                   help="loss (default), another uncalibrated attack, or lira / lira-offline (one-run, with reference models)")
    p.add_argument("--references", type=int, default=8, help="reference models of lira / lira-offline (default 8)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence of every bound (default 0.95)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="results folder (default results/privacy-audit-<dataset>)")
    add_data_dir_flag(p)
    add_output_flags(p)


def _run(args: argparse.Namespace) -> int:
    from miaudit.experiments.privacy_audit import PrivacyAuditConfig, format_table, run_privacy_audit, write_privacy_audit

    config = PrivacyAuditConfig(
        dataset=args.dataset, mode=args.mode, canary_kind=args.canary_kind, canaries=args.canaries, runs=args.runs,
        base_records=args.base_records, epsilon=args.epsilon, noise_multiplier=args.noise_multiplier, delta=args.delta,
        attack=args.attack, references=args.references, confidence=args.confidence, seed=args.seed, data_dir=args.data_dir,
    )  # fmt: skip
    with claimed_out(args, f"results/privacy-audit-{args.dataset}", uses_cache=False) as out_dir:
        record = run_privacy_audit(config)
        json_path, md_path = write_privacy_audit(record, out_dir)
        report_path = _write_report(out_dir)
    if args.json:
        print(json.dumps(record, indent=2, default=str))
        return 0
    out = console(args)
    trials = f"{record['trials']} {'canaries' if config.mode == 'one-run' else 'runs'}"
    out.print(f"{args.dataset}: {config.mode} audit, {trials} ({config.canary_kind}), attack {config.scoring_attack}")
    out.print(format_table(record), markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {json_path}, {md_path} and {report_path}")
    return 0


def _write_report(out_dir: Path) -> Path:
    """``report.html`` of the out folder: the empirical-epsilon section (and an audit's, when the folder holds one)."""
    from miaudit.report import write_report

    return write_report(out_dir)


COMMANDS.add(
    "privacy-audit",
    Command("Empirical privacy audit: epsilon lower bounds from canaries, beside the accountant's epsilon.", _configure, _run, torch=True),
)
