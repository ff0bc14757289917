"""Text attacks on a small GPT fine-tuned here: AUC and TPR at 1% / 0.1% FPR over seeds, the blind baseline beside them.

Each run is one ``miaudit audit-text`` (``run_text_audit``, the CLI's path) on the fortunes
corpus (Debian package ``fortunes``): a tokenizer and a ``--size`` GPT pre-trained on public
text, fine-tuned ``--epochs`` epochs on the members; the attacker's reference LM is the public
model fine-tuned on its own pool with the same recipe. Prints, per attack, mean ± std over
``--seeds`` of AUC and TPR at 1% and 0.1% FPR, and the blind baseline's AUC (a bag-of-words
classifier on the text alone, cross-fitted on the truth: a check of the split). ``--shift
source`` draws members and non-members from different fortune files on purpose, to show what
a shifted split does to the blind baseline and to the attacks' apparent AUC.

LiRA and RMIA (online and offline) train ``--references`` reference LMs per variant; online
ones train on the pool's half plus half of the evaluated documents, so they cost the most.

Example (one 1000-member seed with 8 + 8 reference LMs: 177-243 s on an idle 2-core machine;
a 300-member seed about 70 s)::

    python benchmarks/text_attacks.py --seeds 0,1,2 --members 1000
    python benchmarks/text_attacks.py --seeds 0 --members 300 --epochs-sweep 1,3,10,30
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _audit(seed: int, args: argparse.Namespace, **changes: object) -> dict:
    from miaudit.text.audit import TextAuditConfig, run_text_audit

    params = {"members": args.members, "nonmembers": args.members, "pool": args.members, "public": args.public,
              "size": args.size, "epochs": args.epochs, "seed": seed, "shift": args.shift, "references": args.references,
              **changes}  # fmt: skip
    start = time.perf_counter()
    record = run_text_audit(TextAuditConfig(**params))
    s = record.summary
    return {"attacks": s["attacks"], "blind": s["dataset"]["blind_baseline"]["auc"], "seconds": time.perf_counter() - start,
            "ppl": (s["target"]["perplexity_members"], s["target"]["perplexity_nonmembers"]), "level": s["verdict"]["level"]}  # fmt: skip


def _cell(values: list[float | None]) -> str:
    kept = [v for v in values if v is not None]
    if not kept:
        return "n/m"
    return f"{np.mean(kept):.3f} ± {np.std(kept):.3f}" if len(kept) > 1 else f"{kept[0]:.3f}"


def _ratio(tpr: float, loss_tpr: float) -> str:
    """An attack's TPR at 1% FPR over the loss attack's, or n/m where either was not measured."""
    return "n/m" if not (np.isfinite(tpr) and np.isfinite(loss_tpr) and loss_tpr > 0) else f"{tpr / loss_tpr:.1f}x"


def table(runs: list[dict]) -> str:
    names = list(runs[0]["attacks"])
    lines = ["| attack | AUC | TPR@1%FPR | TPR@0.1%FPR | TPR@1%FPR / loss's |", "|---|---|---|---|---|"]
    loss = np.mean([r["attacks"]["loss"]["tpr_at_fpr"].get("0.01") or np.nan for r in runs]) if "loss" in names else np.nan
    for name in sorted(names, key=lambda n: -np.mean([r["attacks"][n]["auc"] for r in runs])):
        e = [r["attacks"][name] for r in runs]
        lines.append(f"| {name} | {_cell([x['auc'] for x in e])} | {_cell([x['tpr_at_fpr'].get('0.01') for x in e])} | "
                     f"{_cell([x['tpr_at_fpr'].get('0.001') for x in e])} | "
                     f"{_ratio(np.mean([x['tpr_at_fpr'].get('0.01') or np.nan for x in e]), loss)} |")  # fmt: skip
    lines.append(f"| blind baseline (text alone; a split check) | {_cell([r['blind'] for r in runs])} | - | - | - |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--members", type=int, default=1000, help="members = non-members = attacker's pool (documents)")
    p.add_argument("--public", type=int, default=4000)
    p.add_argument("--size", default="tiny")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--references", type=int, default=8, help="K reference LMs per variant for LiRA and RMIA (online and offline)")
    p.add_argument("--shift", default=None, help="source: a deliberately shifted split")
    p.add_argument("--epochs-sweep", default=None, help="comma-separated fine-tuning epochs: one row per value (first seed only)")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.epochs_sweep:
        print("| epochs | perplexity members / non-members | reference AUC | loss AUC | min-k++ AUC | blind AUC | seconds |\n|---|---|---|---|---|---|---|")
        for epochs in (int(e) for e in args.epochs_sweep.split(",")):
            r = _audit(seeds[0], args, epochs=epochs)
            a = r["attacks"]
            print(f"| {epochs} | {r['ppl'][0]:.1f} / {r['ppl'][1]:.1f} | {a['reference']['auc']:.3f} | {a['loss']['auc']:.3f} | "
                  f"{a['min-k-plus-plus']['auc']:.3f} | {r['blind']:.3f} | {r['seconds']:.0f} |", flush=True)  # fmt: skip
        return
    runs = []
    for seed in seeds:
        runs.append(_audit(seed, args))
        print(f"seed {seed}: {runs[-1]['seconds']:.0f} s, perplexity {runs[-1]['ppl'][0]:.1f} / {runs[-1]['ppl'][1]:.1f}, "
              f"verdict {runs[-1]['level']}", flush=True)  # fmt: skip
    print(f"fortunes, {args.size} GPT, {args.members} members / {args.members} non-members, split {args.shift or 'iid'}, "
          f"{len(seeds)} seed(s), {args.epochs} fine-tuning epochs, {args.references} reference LMs per variant")  # fmt: skip
    print(table(runs))


if __name__ == "__main__":
    main()
