"""Power against queries per record for every label-only variant, beside the gap attack.

Target: Location30 with its audit defaults (MLP 446-128-30, Tanh, Adam, 30 epochs; the kind of
target on which IBM ART's HopSkipJump boundary attack was measured in issue 6), gray box with
labels only (``--output label``), 4 shadow models. Each variant runs with several query settings
(attack options); models come from the cache, so only the attacks are rerun. The one-shot attacks
(``yoqo``, ``oslo``: one crafted query per record by default, graded with ``n_queries``; the
papers' bare 0/1 score with ``tie_break=False``) sit beside the others. Seconds are each setting's wall time of ``run_audit`` (cached models load, shadow
and reference models train on a cold cache).

    MIAUDIT_DATA_DIR=../shared/data .venv/bin/python tools/label_only_queries.py --seeds 0 1 2 --out results/label-only-queries

``--dataset cifar10`` runs the settings on CIFAR-10 with its audit defaults (the small ``cnn``),
``--records N`` cutting the split to N members, N non-members and a pool of 2N (a CPU budget);
``--only`` keeps the settings named: ``ATTACK`` (all its rows), ``ATTACK:-`` (its row without
options) or ``ATTACK:key=value,...`` (that row); give each selection its own ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SETTINGS: tuple[tuple[str, dict], ...] = (
    ("correctness", {}),
    ("label-noise", {"n_noise": 10}),
    ("label-noise", {"n_noise": 30}),
    ("label-noise", {"n_noise": 100}),
    ("label-augmentation", {"n_augment": 10}),
    ("label-augmentation", {"n_augment": 30}),
    ("label-boundary", {"max_iter": 0}),
    ("label-boundary", {"max_iter": 1, "num_evals": 20}),
    ("label-boundary", {"max_iter": 3, "num_evals": 50}),
    ("yoqo", {"tie_break": False}),
    ("yoqo", {}),
    ("yoqo", {"online": False}),
    ("yoqo", {"n_queries": 5}),
    ("oslo", {"tie_break": False}),
    ("oslo", {}),
    ("oslo", {"n_queries": 5}),
    ("oslo", {"n_queries": 10}),
)


def run(seed: int, partial: Path, settings: tuple[tuple[str, dict], ...], dataset: str, records: int | None) -> list[dict]:
    """Every setting for one seed; finished settings are kept in ``partial`` (JSON lines) and reused."""
    from miaudit.data.split import SplitSizes
    from miaudit.experiments import AuditConfig, run_audit

    done = [json.loads(line) for line in partial.read_text().splitlines()] if partial.exists() else []
    split = None if records is None else SplitSizes(records, records, 2 * records, 0)
    rows = []
    for name, options in settings:
        old = [r for r in done if r["attack"] == name and r["options"] == options]
        if old:
            rows.append(old[0])
            continue
        config = AuditConfig(
            dataset=dataset, seed=seed, split=split, threat_model="gray-box", output="label", attacks=(name,),
            attack_options={name: options} if options else {}, n_bootstrap=0,
        )  # fmt: skip
        start = time.perf_counter()
        result = run_audit(config, progress=False)
        seconds = time.perf_counter() - start
        o = result.outcomes[0]
        rows.append({
            "attack": name, "options": options, "auc": o.metrics.auc, "balanced_accuracy": o.metrics.balanced_accuracy,
            "tpr_at_1pct_fpr": o.metrics.tpr_at_fpr.get(0.01), "seconds": seconds,
            "queries_per_record": o.result.queries_per_record, "train_accuracy": result.train_accuracy,
            "test_accuracy": result.test_accuracy,
        })  # fmt: skip
        with partial.open("a") as f:
            f.write(json.dumps(rows[-1]) + "\n")
        print(seed, name, options, f"AUC {o.metrics.auc:.3f} BA {o.metrics.balanced_accuracy:.3f} "
              f"TPR@1%FPR {rows[-1]['tpr_at_1pct_fpr']} q {o.result.queries_per_record:.1f} {seconds:.1f} s", flush=True)
    return rows


def _selected(only: list[str] | None) -> tuple[tuple[str, dict], ...]:
    """The rows of :data:`SETTINGS` that ``--only`` names (all without it)."""
    if only is None:
        return SETTINGS
    keep = []
    for name, options in SETTINGS:
        text = ",".join(f"{k}={v}" for k, v in options.items()) or "-"
        if any(item == name or item == f"{name}:{text}" for item in only):
            keep.append((name, options))
    if not keep:
        raise SystemExit(f"--only {' '.join(only)} names no row of the table")
    return tuple(keep)


def _ms(values: list[float | None]) -> str:
    if any(v is None for v in values):  # a row from before the column (rerun it) or too few non-members
        return "-"
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="results/label-only-queries")
    parser.add_argument("--dataset", default="location30", choices=["location30", "cifar10"])
    parser.add_argument("--records", type=int, default=None, help="members (= non-members; pool 2x); default: the audit's split")
    parser.add_argument("--only", nargs="+", default=None, help="rows to run: ATTACK, ATTACK:- or ATTACK:key=value,... (default: all)")
    args = parser.parse_args()
    settings = _selected(args.only)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in args.seeds:
        path = out / f"seed-{seed}.json"
        if not path.exists():
            path.write_text(json.dumps(run(seed, out / f"seed-{seed}.partial.jsonl", settings, args.dataset, args.records), indent=2))
        per_seed.append(json.loads(path.read_text()))
    first = [r for s in per_seed for r in s]
    target = "Location30, MLP 446-128-30 (audit defaults)" if args.dataset == "location30" else "CIFAR-10, small CNN (audit defaults)"
    if args.records is not None:
        target += f", {args.records} members / {args.records} non-members / pool {2 * args.records}"
    lines = [
        f"{target}, gray box with labels only, seeds {', '.join(map(str, args.seeds))} "
        f"(mean ± sample std); target train accuracy {_ms([r['train_accuracy'] for r in first])}, "
        f"test accuracy {_ms([r['test_accuracy'] for r in first])}.",
        "",
        "| attack | options | queries / record | balanced accuracy | AUC | TPR at 1% FPR | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, (name, options) in enumerate(settings):
        rows = [s[i] for s in per_seed]
        opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        lines.append(
            f"| {name} | {opts} | {np.mean([r['queries_per_record'] for r in rows]):.1f} | "
            f"{_ms([r['balanced_accuracy'] for r in rows])} | {_ms([r['auc'] for r in rows])} | "
            f"{_ms([r.get('tpr_at_1pct_fpr') for r in rows])} | {_ms([r.get('seconds') for r in rows])} |"
        )
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
