"""The hardest settings on the Location30 reproduction target: label-only, BlindMI and NSH beside
the gap (correctness), NN and shadow-training attacks, over several seeds.

Target, recipe, split and shadow models are those of the ``song-mittal-location30`` preset
(MLP 446-1024-512-256-128-30, 1000 members). Every attack runs in one audit per seed under the
``white-box-partial`` threat model, which grants each attack what it needs (the label-only
attacks still query labels only, BlindMI the top-3 probabilities); the attacker knows half of
the members (for NSH), so every attack is evaluated on the other 500 members and the 1000
non-members.

    MIAUDIT_DATA_DIR=../shared/data .venv/bin/python tools/hard_settings.py --seeds 0 1 2 --out results/hard-settings

Each seed's figures are saved as they finish (``seed-<n>.json``); a rerun reuses them and the
model cache. The markdown table goes to stdout and ``table.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ATTACKS = (
    "correctness",
    "label-augmentation",
    "label-noise",
    "label-boundary",
    "blindmi-diff-w",
    "blindmi-diff-wo",
    "blindmi-bi",
    "shadow-training",
    "nn",
    "nsh",
)


def run_seed(seed: int, attacks: tuple[str, ...]) -> dict:
    from miaudit.experiments import run_audit
    from miaudit.experiments.presets import PRESETS

    config = replace(PRESETS.get("song-mittal-location30").config(seed, attacks=attacks), threat_model="white-box-partial", n_bootstrap=0)
    start = time.time()
    result = run_audit(config, progress=False)
    return {
        "seed": seed,
        "train_accuracy": result.train_accuracy,
        "test_accuracy": result.test_accuracy,
        "members": int(result.is_member.sum()),
        "non_members": int((~result.is_member).sum()),
        "seconds": time.time() - start,
        "attacks": {
            o.result.attack: {
                "auc": o.metrics.auc,
                "balanced_accuracy": o.metrics.balanced_accuracy,
                "threshold_source": o.result.threshold_source,
                "queries_per_record": o.result.queries_per_record,
            }
            for o in result.outcomes
        },
    }


def _ms(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/m"
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.3f} ± {sd:.3f}"


def table(runs: list[dict]) -> str:
    seeds = ", ".join(str(r["seed"]) for r in runs)
    lines = [
        f"Location30, MLP 446-1024-512-256-128-30 (preset song-mittal-location30), seeds {seeds} "
        f"(mean ± sample std over {len(runs)} seeds); target train accuracy {_ms([r['train_accuracy'] for r in runs])}, "
        f"test accuracy {_ms([r['test_accuracy'] for r in runs])}; evaluated: {runs[0]['members']} members, "
        f"{runs[0]['non_members']} non-members per seed.",
        "",
        "| attack | threat model it needs | AUC | balanced accuracy | threshold from | queries / record |",
        "|---|---|---|---|---|---|",
    ]
    from miaudit.attacks import ATTACKS as REGISTRY
    from miaudit.threat import short_description

    for name in ATTACKS:
        rows = [r["attacks"][name] for r in runs if name in r["attacks"]]
        if not rows:
            continue
        q = np.mean([a["queries_per_record"] for a in rows])
        lines.append(
            f"| {name} | {short_description(REGISTRY.get(name).requirements)} | {_ms([a['auc'] for a in rows])} | "
            f"{_ms([a['balanced_accuracy'] for a in rows])} | {rows[0]['threshold_source']} | {q:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="results/hard-settings")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in args.seeds:
        path = out / f"seed-{seed}.json"
        if path.exists():
            run = json.loads(path.read_text())
        else:
            run = run_seed(seed, ATTACKS)
            path.write_text(json.dumps(run, indent=2))
        print(f"seed {seed}: {run['seconds']:.0f} s; " + ", ".join(f"{n} AUC {a['auc']:.3f}" for n, a in run["attacks"].items()), flush=True)
        runs.append(run)
    text = table(runs)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
