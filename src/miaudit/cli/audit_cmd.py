"""``miaudit audit``: train (or load) the target, run the permitted attacks, print and save results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from miaudit.cli.common import COMMANDS, Command, add_data_dir_flag, add_executor_flags, add_output_flags, console
from miaudit.errors import ConfigError

if TYPE_CHECKING:
    from miaudit.experiments import AuditResult


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="registered data set (see `miaudit datasets list`) or a CSV/.npz/image-folder path")
    p.add_argument("--label-column", default=None, help="label column of a CSV data set (default: a column named label, labels, y, class or target)")
    p.add_argument("--model", default=None, help="target model (see `miaudit models`); default depends on the data set")
    p.add_argument("--seed", type=int, default=0, help="the one seed behind every split, initialisation and sample")
    p.add_argument("--out", default="results/audit", help="results folder (results.json, scores.csv)")
    p.add_argument("--threat-model", default="gray-box", help="black-box | gray-box | white-box | white-box-partial | label-only")
    p.add_argument("--output", default=None, metavar="ACCESS", help="override what one query returns: label | topK (e.g. top3) | full")
    p.add_argument("--query-budget", type=int, default=None, metavar="N", help="queries (records) each attack may make; each attack has its own budget, and one that runs out is skipped")
    p.add_argument("--price-per-query", type=float, default=None, metavar="PRICE", help="price of one query; results.json then reports each attack's cost")
    p.add_argument("--attacks", default=None, help="comma-separated attack names (default: all the threat model permits)")
    p.add_argument("--attack-option", action="append", default=[], metavar="ATTACK:KEY=VALUE", help="an option of one attack, e.g. blindmi-bi:batch_size=100 or label-noise:n_noise=50 (repeatable)")
    p.add_argument(
        "--shadow-models",
        "--reference-models",
        dest="shadow_models",
        type=int,
        default=4,
        help="shadow / reference models the attacker trains (default 4; cached, so a rerun trains none)",
    )
    p.add_argument("--epochs", type=int, default=None, help="override the training recipe's epochs")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for confidence intervals")
    p.add_argument("--cache-dir", default=None, help="model cache (default: $MIAUDIT_CACHE_DIR or ~/.miaudit/cache)")
    p.add_argument("--target", default=None, metavar="URL", help="attack a model served by `miaudit serve` at URL instead of training one (it must have been trained on this data set, seed and split)")
    p.add_argument("--api-key", default=None, help="API key for --target")
    p.add_argument("--save-target", default=None, metavar="DIR", help="also save the trained target (torch models) as a model folder for `miaudit serve`")
    p.add_argument("--no-cache", action="store_true", help="train everything afresh and cache nothing")
    add_executor_flags(p)
    p.add_argument("--no-report", action="store_true", help="do not write report.html (the HTML report) into --out")
    add_data_dir_flag(p)
    add_output_flags(p)


def _fmt(value: float | None) -> str:
    return "n/m" if value is None else f"{value:.4f}"


def _save_target(result: "AuditResult", path: Path) -> None:
    from miaudit.models import ArchConfig, TorchClassifier
    from miaudit.targets.model_dir import save_model_dir

    if result.config.target_url is not None:
        raise ConfigError("--save-target saves a target miaudit trained; this audit attacked a served one")
    if not isinstance(result.target, TorchClassifier):
        raise ConfigError(f"--save-target saves torch models only; {result.model_name!r} is a scikit-learn estimator")
    save_model_dir(
        result.target,
        ArchConfig(result.model_name, result.model_options),
        path,
        num_classes=result.dataset.num_classes,
        input_shape=result.dataset.feature_shape,
        class_names=result.dataset.class_names,
    )


def parse_attack_options(items: list[str]) -> dict[str, dict[str, object]]:
    """``["attack:key=value", ...]`` -> ``{attack: {key: value}}``; values parsed as JSON (numbers,
    true/false) or else kept as strings."""
    options: dict[str, dict[str, object]] = {}
    for item in items:
        attack, sep, rest = item.partition(":")
        key, eq, raw = rest.partition("=")
        if not (sep and eq and attack.strip() and key.strip()):
            raise ConfigError(f"--attack-option {item!r}: expected ATTACK:KEY=VALUE, e.g. blindmi-bi:batch_size=100")
        try:
            value: object = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(attack.strip(), {})[key.strip()] = value
    return options


def _run(args: argparse.Namespace) -> int:
    from miaudit.attacks import ATTACKS
    from miaudit.threat import short_description
    from miaudit.experiments import AuditConfig, result_summary, run_audit, write_results
    from miaudit.models.executors import executor_from_options

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip()) if args.attacks else None
    config = AuditConfig(
        dataset=args.dataset,
        label_column=args.label_column,
        model=args.model,
        seed=args.seed,
        threat_model=args.threat_model,
        output=args.output,
        query_budget=args.query_budget,
        price_per_query=args.price_per_query,
        attacks=attacks,
        n_shadow_models=args.shadow_models,
        attack_options=parse_attack_options(args.attack_option),
        recipe={"epochs": args.epochs} if args.epochs is not None else {},
        n_bootstrap=args.bootstrap,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        target_url=args.target,
        api_key=args.api_key,
    )
    out = console(args)
    executor = executor_from_options(args.executor or "local", ray_address=args.ray_address, workers=args.workers)
    try:
        result = run_audit(config, progress=not (args.quiet or args.json), executor=executor)
    finally:
        executor.close()
    json_path, csv_path = write_results(result, Path(args.out))
    if args.save_target:
        _save_target(result, Path(args.save_target))
    report_path = None
    if not args.no_report and result.outcomes:
        from miaudit.report import write_report

        report_path = write_report(Path(args.out))
    summary = result_summary(result)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0

    table = Table(
        title=f"{result.dataset.name} / {result.model_name} / seed {config.seed} / threat model {summary['threat_model']}",
        caption="balanced accuracy at each attack's own threshold (source in results.json); n/m = not measurable",
    )
    for col in ("attack", "knowledge (output/model/training/data)", "AUC [95% CI]", "TPR@1%FPR", "TPR@0.1%FPR", "balanced acc", "queries/record", "target train acc", "target test acc"):
        table.add_column(col, justify="right" if col[0].isupper() or col.startswith(("TPR", "bal", "queries", "target")) else "left")
    for o in result.outcomes:
        m = o.metrics
        ci = f" [{m.auc_ci[0]:.3f}, {m.auc_ci[1]:.3f}]" if m.auc_ci else ""
        table.add_row(
            o.result.attack,
            short_description(ATTACKS.get(o.result.attack).requirements),
            f"{m.auc:.4f}{ci}",
            _fmt(m.tpr_at_fpr.get(0.01)),
            _fmt(m.tpr_at_fpr.get(0.001)),
            _fmt(m.balanced_accuracy),
            f"{o.result.queries_per_record:g}",
            f"{result.train_accuracy:.4f}",
            f"{result.test_accuracy:.4f}",
        )
    out.print(table)
    for name, reason in result.skipped.items():
        out.print(f"skipped {name}: {reason}")
    written = f"{json_path}, {csv_path}" + (f" and {report_path}" if report_path else "")
    out.print(f"members {int(result.is_member.sum())}, non-members {int((~result.is_member).sum())}; wrote {written}")
    return 0


COMMANDS.add("audit", Command("Audit a model: train the target, run the attacks, report.", _configure, _run))
