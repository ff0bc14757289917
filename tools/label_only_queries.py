"""Power against queries per record for every label-only variant, beside the gap attack.

Target: Location30 with its audit defaults (MLP 446-128-30, Tanh, Adam, 30 epochs; the kind of
target on which IBM ART's HopSkipJump boundary attack was measured in issue 6), gray box with
labels only (``--output label``), 4 shadow models. Each variant runs with several query settings
(attack options); models come from the cache, so only the attacks are rerun.

    MIAUDIT_DATA_DIR=../shared/data .venv/bin/python tools/label_only_queries.py --seeds 0 1 2 --out results/label-only-queries
"""

from __future__ import annotations

import argparse
import json
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
)


def run(seed: int, partial: Path) -> list[dict]:
    """Every setting for one seed; finished settings are kept in ``partial`` (JSON lines) and reused."""
    from miaudit.experiments import AuditConfig, run_audit

    done = [json.loads(line) for line in partial.read_text().splitlines()] if partial.exists() else []
    rows = []
    for name, options in SETTINGS:
        old = [r for r in done if r["attack"] == name and r["options"] == options]
        if old:
            rows.append(old[0])
            continue
        config = AuditConfig(
            dataset="location30", seed=seed, threat_model="gray-box", output="label", attacks=(name,),
            attack_options={name: options} if options else {}, n_bootstrap=0,
        )  # fmt: skip
        result = run_audit(config, progress=False)
        o = result.outcomes[0]
        rows.append({
            "attack": name, "options": options, "auc": o.metrics.auc, "balanced_accuracy": o.metrics.balanced_accuracy,
            "queries_per_record": o.result.queries_per_record, "train_accuracy": result.train_accuracy,
            "test_accuracy": result.test_accuracy,
        })  # fmt: skip
        with partial.open("a") as f:
            f.write(json.dumps(rows[-1]) + "\n")
        print(seed, name, options, f"AUC {o.metrics.auc:.3f} BA {o.metrics.balanced_accuracy:.3f} q {o.result.queries_per_record:.1f}", flush=True)
    return rows


def _ms(values: list[float]) -> str:
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="results/label-only-queries")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in args.seeds:
        path = out / f"seed-{seed}.json"
        if not path.exists():
            path.write_text(json.dumps(run(seed, out / f"seed-{seed}.partial.jsonl"), indent=2))
        per_seed.append(json.loads(path.read_text()))
    first = [r for s in per_seed for r in s]
    lines = [
        f"Location30, MLP 446-128-30 (audit defaults), gray box with labels only, seeds {', '.join(map(str, args.seeds))} "
        f"(mean ± sample std); target train accuracy {_ms([r['train_accuracy'] for r in first])}, "
        f"test accuracy {_ms([r['test_accuracy'] for r in first])}.",
        "",
        "| attack | options | queries / record | balanced accuracy | AUC |",
        "|---|---|---|---|---|",
    ]
    for i, (name, options) in enumerate(SETTINGS):
        rows = [s[i] for s in per_seed]
        opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        lines.append(
            f"| {name} | {opts} | {np.mean([r['queries_per_record'] for r in rows]):.1f} | "
            f"{_ms([r['balanced_accuracy'] for r in rows])} | {_ms([r['auc'] for r in rows])} |"
        )
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
