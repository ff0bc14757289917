"""Text leakage study: membership leakage of a fine-tuned GPT against fine-tuning epochs and model size.

For language models the memorisation literature finds that leakage grows with the passes over
the data and with the model's capacity: Carlini et al. (USENIX Security 2021; ICLR 2023,
"Quantifying memorization across neural language models": larger models memorise more) and
Mireshghallah et al. (EMNLP 2022, "Memorization in NLP fine-tuning methods": more fine-tuning
epochs, more membership leakage). Each row here is one ``miaudit audit-text`` (a model trained
here on the ``--dataset`` corpus: a GPT of each ``size`` pre-trained on public text, fine-tuned
``epochs`` epochs on the members), the attacks run under the text audits' gray-box threat model
(token log-probabilities; the attacker's reference LM is the public model fine-tuned on its own
pool). The headline attack of each row is the verdict's (the first of
:data:`~miaudit.text.audit.TEXT_HEADLINE_ORDER` that ran), never the best on the truth.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from miaudit.errors import ConfigError
from miaudit.studies.base import DEFAULT_ATTACKS, STUDIES, Study, StudyConfig, StudyResult
from miaudit.studies.plots import context_line
from miaudit.studies.runner import check_grid_keys, parse_grid
from miaudit.studies.stats import aggregate, correlation, positive_and_significant

CLAIM = (
    "A language model leaks more membership the longer it is fine-tuned and the larger it is "
    "(Mireshghallah et al. 2022; Carlini et al. 2021, 2023)."
)
GRID_KEYS = {"epochs", "size", "members", "pool", "public", "references"}
TEXT_DEFAULT_ATTACKS: tuple[str, ...] = ("loss", "zlib", "min-k-plus-plus", "reference")
"""Run when ``--attacks`` is left at the classifier studies' default: the text attacks that need
no reference set (each row would train 2K more models), the reference LM among them."""
DEFAULT_EPOCHS = [1, 3, 10, 30]
DEFAULT_SIZES = ["tiny", "small"]


def _row(record: Any, seed: int, size: str, epochs: int) -> dict[str, Any]:
    s = record.summary
    headline = (s.get("verdict") or {}).get("headline_attack")
    row: dict[str, Any] = {
        "seed": seed, "size": size, "epochs": epochs,
        "perplexity_members": s["target"]["perplexity_members"], "perplexity_nonmembers": s["target"]["perplexity_nonmembers"],
        "blind_auc": s["dataset"]["blind_baseline"]["auc"], "headline_attack": headline,
    }  # fmt: skip
    row["perplexity_ratio"] = row["perplexity_nonmembers"] / row["perplexity_members"]
    for name, e in s["attacks"].items():
        row[f"{name}_auc"] = e["auc"]
        row[f"{name}_tpr@1%"] = e["tpr_at_fpr"].get("0.01")
    row["headline_auc"] = s["attacks"][headline]["auc"] if headline else float("nan")
    # TPR at an FPR is reported only where the non-members give 10 expected false positives
    # (miaudit.metrics.MIN_FALSE_POSITIVES): 1% needs 1000 of them, 10% is measurable at 100.
    for level, key in (("0.1", "10%"), ("0.01", "1%")):
        value = s["attacks"][headline]["tpr_at_fpr"].get(level) if headline else None
        row[f"headline_tpr@{key}"] = float("nan") if value is None else value
    return row


def run(config: StudyConfig, progress: bool = False) -> StudyResult:
    from miaudit.text.audit import TextAuditConfig, run_text_audit
    from miaudit.text.lm import lm_config

    check_grid_keys(config, GRID_KEYS, "text-leakage")
    epochs = parse_grid(config, "epochs", [config.epochs] if config.epochs else DEFAULT_EPOCHS, int)
    sizes = parse_grid(config, "size", DEFAULT_SIZES, str)
    for size in sizes:
        lm_config(size)  # an unknown size fails before anything trains
    if any(e < 1 for e in epochs):
        raise ConfigError(f"--grid epochs= must be positive whole numbers, got {epochs}")
    members, pool, public = (parse_grid(config, k, [d], int)[0] for k, d in (("members", 300), ("pool", 300), ("public", 2000)))
    references = parse_grid(config, "references", [8], int)[0]
    attacks = TEXT_DEFAULT_ATTACKS if tuple(config.attacks) == DEFAULT_ATTACKS else tuple(config.attacks)
    rows = []
    for seed in config.seeds:
        for size in sizes:
            for e in epochs:
                if progress:
                    print(f"text-leakage: seed {seed}, size {size}, {e} fine-tuning epoch(s)", flush=True)
                audit = TextAuditConfig(corpus=config.dataset, members=members, nonmembers=members, pool=pool, public=public, size=size,
                                        epochs=e, attacks=attacks, references=references, seed=seed, data_dir=config.data_dir)  # fmt: skip
                rows.append(_row(run_text_audit(audit), seed, size, e))
    columns = ["perplexity_members", "perplexity_nonmembers", "perplexity_ratio", "headline_auc", "headline_tpr@10%", "headline_tpr@1%", "blind_auc",
               *[f"{a}_auc" for a in attacks]]  # fmt: skip
    summary = aggregate(rows, ["size", "epochs"], [c for c in columns if all(c in r for r in rows)])
    by_size = {size: correlation([r["epochs"] for r in rows if r["size"] == size], [r["headline_auc"] for r in rows if r["size"] == size]) for size in sizes}
    mean = {(s["size"], s["epochs"]): s["headline_auc_mean"] for s in summary}
    larger = sizes[-1]
    size_gain = {str(e): mean[(larger, e)] - mean[(sizes[0], e)] for e in epochs} if len(sizes) > 1 else {}
    findings = {
        "epochs_vs_headline_auc": by_size,
        "epochs_claim_holds": {size: positive_and_significant(c) for size, c in by_size.items()},
        "size_gain": {"larger": larger, "smaller": sizes[0], "headline_auc_difference_by_epochs": size_gain} if size_gain else None,
        "size_claim_holds": (sum(g > 0 for g in size_gain.values()) > len(size_gain) / 2) if size_gain else None,
        "rule": "epochs: Spearman rho(epochs, headline AUC) > 0 with p < 0.05 within a size, over all seeds; "
                "size: the last size's mean headline AUC above the first's at more than half of the epochs values",
    }  # fmt: skip
    ctx = {
        "dataset": config.dataset, "records": 2 * members + pool + public, "num_classes": "none (text)",
        "model": "GPT " + " / ".join(sizes), "seeds": list(config.seeds), "attacks": list(attacks),
        "threat_model": "gray-box (token log-probabilities)", "members": members, "pool": pool, "public": public,
    }  # fmt: skip

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, 2)
        for ax, metric, label in ((axes[0], "headline_auc", "headline attack AUC"), (axes[1], "perplexity_ratio", "perplexity non-members / members")):
            for size, marker in zip(sizes, "osd^v"):
                pts = sorted((s for s in summary if s["size"] == size), key=lambda s: s["epochs"])
                ax.errorbar([p["epochs"] for p in pts], [p[f"{metric}_mean"] for p in pts], yerr=[p[f"{metric}_std"] for p in pts],
                            fmt=marker + "-", label=f"GPT {size}", capsize=2)  # fmt: skip
            ax.set_xscale("log")
            ax.set_xlabel("fine-tuning epochs on the members")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[0].plot([min(epochs), max(epochs)], [0.5, 0.5], ":", color="grey", label="chance")
        axes[0].legend(fontsize=8)
        fig.suptitle("Text leakage vs fine-tuning epochs and model size\n" + context_line(ctx), fontsize=8)

    return StudyResult(
        study="text-leakage",
        claim=CLAIM,
        description="Each row is one text audit (one seed, size and epochs); the summary is mean ± std over seeds.",
        tables={"table": rows, "summary": summary},
        findings=findings,
        context=ctx,
        plot=draw,
    )


STUDIES.add("text-leakage", Study("text-leakage", CLAIM, run, "epochs=E1,E2,... size=tiny,small members=N pool=N public=N references=K (--dataset: a text corpus, e.g. fortunes)"))
