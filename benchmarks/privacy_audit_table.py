"""Empirical epsilon lower bounds against the accountant's epsilon: DP-SGD at 1, 2, 4, 8 and non-private.

Every row is one ``miaudit privacy-audit`` run (``run_privacy_audit``, the CLI's path) on
Location30 with the Opacus DP-SGD recipe (PRV accountant, delta 1e-5), bounds at 95% confidence,
guess counts / thresholds chosen on a seeded held-out half. Parts:

* ``loss``: one run, ``--canaries`` out-of-distribution canaries, the loss attack (black box);
* ``lira``: the same canaries scored by online LiRA on ``--references`` reference models the
  auditor trains like the target (black box, with references);
* ``dirac``: one run, ``--canaries`` Dirac gradient canaries in DP-SGD's clipped sum (white box;
  DP-SGD only);
* ``multi``: the classical audit, ``--runs`` models with or without one out-of-distribution
  canary, on ``--multi-base`` base records (smaller, so that 64 DP-SGD models train in minutes):
  Clopper-Pearson (a bound) and the GDP estimate (not a bound);
* ``kinds``: non-private one run with mislabelled and natural canaries (Privacy Meter's kinds).

Each finished row is appended as one JSON line to ``--out`` (so two processes can share the
machine's cores and one ``--table`` call prints everything); ``--table FILE ...`` prints the
markdown table of the rows in those files. Example (two processes, about 25 min on 2 cores)::

    python benchmarks/privacy_audit_table.py --epsilons 1,2,none --out pa.jsonl &
    python benchmarks/privacy_audit_table.py --epsilons 4,8 --parts loss,lira,dirac,multi --out pa.jsonl
    python benchmarks/privacy_audit_table.py --table pa.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

PARTS = ("loss", "lira", "dirac", "multi", "kinds")


def _epsilon(text: str) -> float | None:
    return None if text == "none" else float(text)


def _configs(part: str, epsilon: float | None, args: argparse.Namespace) -> list[dict]:
    common = {"dataset": "location30", "epsilon": epsilon, "seed": args.seed, "data_dir": args.data_dir}
    one = {**common, "canaries": args.canaries, "base_records": args.base_records}
    if part == "loss":
        return [{**one, "attack": "loss"}]
    if part == "lira":
        return [{**one, "attack": "lira", "references": args.references}]
    if part == "dirac":
        return [] if epsilon is None else [{**one, "canary_kind": "dirac"}]
    if part == "multi":
        return [{**common, "mode": "multi-run", "runs": args.runs, "base_records": args.multi_base}]
    return [] if epsilon is not None else [{**one, "canary_kind": kind} for kind in ("mislabelled", "natural")]


def run(args: argparse.Namespace) -> None:
    from miaudit.experiments.privacy_audit import PrivacyAuditConfig, run_privacy_audit

    for text in args.epsilons.split(","):
        for part in args.parts.split(","):
            if part not in PARTS:
                raise SystemExit(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
            for params in _configs(part, _epsilon(text), args):
                start = time.perf_counter()
                record = run_privacy_audit(PrivacyAuditConfig(**params))
                row = {
                    "part": part, "epsilon_target": _epsilon(text), "accountant_epsilon": record["accountant_epsilon"],
                    "kind": record["config"]["canary_kind"], "attack": record["config"]["attack"], "mode": record["config"]["mode"],
                    "trials": record["trials"], "base_records": params["base_records"], "seconds": time.perf_counter() - start,
                    "bounds": {b["method"]: b["epsilon"] for b in record["bounds"]},
                }  # fmt: skip
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


def table(paths: list[str]) -> str:
    rows = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line.strip()]
    order = {p: i for i, p in enumerate(PARTS)}
    rows.sort(key=lambda r: (order[r["part"]], r["kind"], -1 if r["epsilon_target"] is None else r["epsilon_target"]))
    lines = ["| audit | canaries / attack | trials | accountant's epsilon | bound (nats) | ratio | seconds |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        eps = r["accountant_epsilon"]
        for method, value in r["bounds"].items():
            label = f"{r['mode']} {method}" + (" (estimate)" if method == "gdp" else "")
            ratio = "-" if eps is None else f"{value / eps:.3f}"
            lines.append(f"| {label} | {r['kind']} / {r['attack']} | {r['trials']} | {'non-private' if eps is None else f'{eps:.3f}'} | "
                         f"{value:.3f} | {ratio} | {r['seconds']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epsilons", default="1,2,4,8,none", help="comma-separated DP-SGD epsilons; 'none' = non-private")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--canaries", type=int, default=1000)
    p.add_argument("--base-records", type=int, default=1000)
    p.add_argument("--references", type=int, default=8)
    p.add_argument("--runs", type=int, default=64)
    p.add_argument("--multi-base", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=os.environ.get("MIAUDIT_DATA_DIR"))
    p.add_argument("--out", default="privacy_audit_table.jsonl")
    p.add_argument("--table", nargs="+", default=None, help="print the markdown table of these JSON-lines files and exit")
    args = p.parse_args()
    if args.table:
        print(table(args.table))
    else:
        run(args)


if __name__ == "__main__":
    main()
