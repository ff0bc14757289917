"""``miaudit audit``: train (or load) the target, run the permitted attacks, print and save results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from miaudit.cli.common import (
    COMMANDS,
    Command,
    add_data_dir_flag,
    add_executor_flags,
    add_output_flags,
    claimed_out,
    console,
    parse_int_list,
    parse_name_list,
)
from miaudit.cli.tabular_flags import add_tabular_flags, tabular_options
from miaudit.errors import ConfigError, InputError

if TYPE_CHECKING:
    from miaudit.experiments import AuditResult


def _configure(p: argparse.ArgumentParser) -> None:
    what = p.add_argument_group("what is audited (a data set to train a target on, or your own model and records)")
    what.add_argument("--dataset", default=None, help="registered data set (see `miaudit datasets list`) or a CSV/.npz/image-folder path; miaudit trains the target")
    what.add_argument("--model-file", default=None, metavar="FILE", help="your own model: .skops (scikit-learn), .onnx, .pt (TorchScript, with --trust-model-code); give --train and --test")
    what.add_argument("--target", default=None, metavar="URL", help="a served model (miaudit serve or the same protocol); with --train/--test, or with --dataset (then trained on its split: audit --save-target)")
    what.add_argument("--outputs", default=None, metavar="FILE", help="only the model's outputs: .npz (logits or probabilities, labels, is_member) or .csv (label, is_member, logit_0.. or prob_0..)")
    what.add_argument("--train", default=None, metavar="FILE", help="the model's training records (the members): CSV, or .npz with arrays x, y")
    what.add_argument("--test", default=None, metavar="FILE", help="records the model never saw (the non-members), same format as --train")
    what.add_argument("--pool", default=None, metavar="FILE", help="further same-distribution records the attacker may use (default: --pool-share of --test, not evaluated)")
    what.add_argument("--pool-share", type=float, default=0.5, help="without --pool: the share of --test held out as the attacker's pool (default 0.5)")
    what.add_argument("--shadow-model", default=None, metavar="same|NAME", help="the attacker's stand-in for your model in shadow/reference models: 'same' (clone a scikit-learn estimator) or a miaudit model name")
    what.add_argument("--shadow-recipe", action="append", default=[], metavar="KEY=VALUE", help="training recipe of a torch stand-in (--shadow-model same on a torch module, or a miaudit torch model), e.g. epochs=20 or lr=0.01 (repeatable)")
    what.add_argument("--onnx-outputs", default="logits", choices=["logits", "probabilities"], help="what an ONNX model's first output is")
    what.add_argument("--trusted-type", action="append", default=[], metavar="TYPE", help="a type a .skops file may hold beyond scikit-learn's own (repeatable; only for files you trust)")
    what.add_argument("--trust-model-code", action="store_true", help="run a TorchScript model file (a program: refused without this) in a sandboxed process that can write only to a scratch folder; only for files you trust")
    p.add_argument("--label-column", default=None, help="label column of CSV data (default: a column named label, labels, y, class or target)")
    add_tabular_flags(p)
    p.add_argument("--model", default=None, help="target model trained here (see `miaudit models`); default depends on the data set")
    p.add_argument("--split", default=None, metavar="IN,OUT,POOL", help="records in the target's training set, its held-out set and the attacker's pool (a data set trained here)")
    p.add_argument("--seed", type=int, default=0, help="the one seed behind every split, initialisation and sample")
    p.add_argument("--out", default="results/audit", help="results folder (results.json, scores.csv, report.html)")
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
    p.add_argument("--standardize", choices=["auto", "yes", "no"], default="auto", help="standardize inputs inside targets trained here, with statistics of their own training records (auto: yes for user files)")
    p.add_argument("--augment", choices=["none", "flip-crop"], default="none", help="training augmentation of image models trained here, target and the attacker's alike (flip-crop: random crop with 4-pixel padding and horizontal flip)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for confidence intervals")
    p.add_argument("--fail-on-leak", default=None, metavar="LEVEL", help="exit 1 when the verdict is at least LEVEL (low | medium | high): a CI gate")
    p.add_argument("--cache-dir", default=None, help="model cache (default: $MIAUDIT_CACHE_DIR or ~/.miaudit/cache)")
    p.add_argument("--api-key", default=None, help="API key for --target")
    p.add_argument("--save-target", default=None, metavar="DIR", help="also save the trained target as a model folder for `miaudit serve`")
    p.add_argument("--no-cache", action="store_true", help="train everything afresh and cache nothing")
    add_executor_flags(p)
    p.add_argument("--no-report", action="store_true", help="do not write report.html (the HTML report) into --out")
    add_data_dir_flag(p)
    add_output_flags(p)


def _fmt(value: float | None) -> str:
    return "n/m" if value is None else f"{value:.4f}"


def _save_target(result: "AuditResult", path: Path) -> None:
    """The audited target as a model folder for ``miaudit serve`` (torch: safetensors; scikit-learn: skops)."""
    from miaudit.models import ArchConfig
    from miaudit.models.architectures import ARCHITECTURES
    from miaudit.targets.saving import save_target

    if result.source_kind in ("url", "outputs"):
        raise ConfigError(f"--save-target saves a model held in this process; this audit's target is {result.source}")
    arch = ArchConfig(result.model_name, result.model_options) if result.model_name in ARCHITECTURES else None
    save_target(
        result.target, path, num_classes=result.dataset.num_classes,
        input_shape=result.dataset.feature_shape, class_names=result.dataset.class_names, arch=arch,
    )  # fmt: skip


def _value(raw: str) -> object:
    """A command-line value: JSON (numbers, true/false, lists) or else the text itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _key_values(flag: str, items: list[str]) -> dict[str, object]:
    """``["key=value", ...]`` -> dict, values read by :func:`_value`."""
    out: dict[str, object] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not (eq and key.strip()):
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE, e.g. epochs=20")
        out[key.strip()] = _value(raw)
    return out


def parse_attack_options(items: list[str]) -> dict[str, dict[str, object]]:
    """``["attack:key=value", ...]`` -> ``{attack: {key: value}}``; values parsed as JSON (numbers,
    true/false) or else kept as strings."""
    options: dict[str, dict[str, object]] = {}
    for item in items:
        attack, sep, rest = item.partition(":")
        key, eq, raw = rest.partition("=")
        if not (sep and eq and attack.strip() and key.strip()):
            raise ConfigError(f"--attack-option {item!r}: expected ATTACK:KEY=VALUE, e.g. blindmi-bi:batch_size=100")
        options.setdefault(attack.strip(), {})[key.strip()] = _value(raw)
    return options


def npz_arrays(path: str, keys: tuple[str, ...], flag: str) -> dict:
    """The arrays of a ``.npz`` file given to ``flag`` (never unpickled); ``keys`` must be present."""
    from miaudit.bounded_io import read_npz

    if Path(path).suffix.lower() != ".npz":
        raise ConfigError(f"{flag} must be a .npz file with arrays {', '.join(keys)}, got {Path(path).name!r}")
    arrays = read_npz(path, flag)
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise InputError(f"{Path(path).name}: missing array(s) {', '.join(missing)} (need {', '.join(keys)})")
    return arrays


def _npz_records(path: str, flag: str) -> tuple[object, object]:
    arrays = npz_arrays(path, ("x", "y"), flag)
    return arrays["x"], arrays["y"]


def own_data_from_args(args: argparse.Namespace) -> object | None:
    """The user's records from --train / --test / --pool (CSV through the tabular loader, or .npz)."""
    from miaudit.core.own_data import OwnData

    if args.train is None and args.test is None:
        if args.pool is not None:
            raise ConfigError("--pool goes with --train and --test (your model's training and test records)")
        return None
    if args.train is None or args.test is None:
        raise ConfigError("give both --train (the model's training records) and --test (records it never saw)")
    files = [f for f in (args.train, args.test, args.pool) if f is not None]
    suffixes = {Path(f).suffix.lower() for f in files}
    name = " + ".join(Path(f).name for f in (args.train, args.test))
    if suffixes == {".csv"}:
        from miaudit.data.tabular import load_tabular_splits

        t = load_tabular_splits(args.train, args.test, args.pool, tabular_options(args))
        pool = (t.x_pool, t.y_pool) if t.x_pool is not None else None
        return OwnData(
            train=(t.x_train, t.y_train), test=(t.x_test, t.y_test), pool=pool, num_classes=t.num_classes,
            class_names=t.class_names, name=name, pool_share=args.pool_share, preprocessing=t.preprocessing,
            warnings=tuple(t.warnings),
        )  # fmt: skip
    if suffixes == {".npz"}:
        pool = _npz_records(args.pool, "--pool") if args.pool else None
        return OwnData(train=_npz_records(args.train, "--train"), test=_npz_records(args.test, "--test"), pool=pool,
                       name=name, pool_share=args.pool_share)  # fmt: skip
    raise ConfigError(f"--train/--test/--pool must all be .csv or all .npz files, got {', '.join(sorted(suffixes))}")


def source_from_args(args: argparse.Namespace, own: object | None) -> object | None:
    """The target source named by --model-file / --outputs / --target (None: trained here)."""
    from miaudit.core.sources import TargetSource
    from miaudit.targets.external import PrecomputedOutputs

    given = [flag for flag, v in (("--model-file", args.model_file), ("--outputs", args.outputs), ("--target", args.target)) if v]
    if len(given) > 1:
        raise ConfigError(f"give one target: {' or '.join(given)}")
    if args.outputs:
        if own is not None or args.dataset:
            raise ConfigError("--outputs holds its own records and truth; leave out --dataset, --train and --test")
        return TargetSource("outputs", PrecomputedOutputs.load(args.outputs))
    if args.model_file:
        if own is None:
            raise ConfigError("--model-file needs your records: --train (its training records) and --test (records it never saw)")
        options: dict[str, object] = {"outputs": args.onnx_outputs}
        if args.trusted_type:
            options["trusted_types"] = tuple(args.trusted_type)
        if args.trust_model_code:
            options["trust_model_code"] = True
        return TargetSource("file", args.model_file, options)
    if args.target and own is not None:
        return TargetSource("url", args.target, {"api_key": args.api_key})
    return None


def config_from_args(args: argparse.Namespace) -> object:
    """The audit plan (:class:`AuditConfig`) the audit command's flags describe."""
    from miaudit.data.split import SplitSizes
    from miaudit.experiments import AuditConfig
    from miaudit.experiments.audit import check_dataset_name

    if args.dataset is not None:
        check_dataset_name(args.dataset)  # before the name is used as a path below
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    attacks = parse_name_list("--attacks", args.attacks)
    own = own_data_from_args(args)
    source = source_from_args(args, own)
    if own is not None and args.dataset:
        raise ConfigError("give either --dataset (miaudit trains the target) or --train/--test (your model's records)")
    if source is None and own is None and not args.dataset:
        raise ConfigError("say what to audit: --dataset NAME|FILE, or --model-file/--target with --train and --test, or --outputs FILE")
    if own is not None and source is None:
        raise ConfigError("--train/--test are your model's records: give the model too (--model-file FILE or --target URL)")
    split = None
    if args.split is not None:
        sizes = parse_int_list("--split", args.split)
        if len(sizes) != 3 or min(sizes) < 1:
            raise ConfigError(f"--split takes three positive record counts IN,OUT,POOL, got {args.split!r}")
        split = SplitSizes(target_in=sizes[0], target_out=sizes[1], attacker_pool=sizes[2])
    recipe: dict[str, object] = {} if args.epochs is None else {"epochs": args.epochs}
    user_file = bool(args.dataset) and Path(args.dataset).expanduser().exists()
    if args.standardize == "yes" or (args.standardize == "auto" and user_file):
        recipe["standardize"] = True
    if args.augment != "none":
        recipe["augment"] = args.augment
    options = tabular_options(args)
    csv_options = {"categorical": options.categorical, "impute": options.impute, "ignore_columns": options.ignore_columns}
    return AuditConfig(
        dataset=args.dataset or getattr(own, "name", None) or "precomputed outputs",
        label_column=args.label_column if own is None else None,
        csv_options={k: v for k, v in csv_options.items() if v} if user_file else {},
        model=args.model,
        seed=args.seed,
        split=split,
        threat_model=args.threat_model,
        output=args.output,
        query_budget=args.query_budget,
        price_per_query=args.price_per_query,
        attacks=attacks,
        n_shadow_models=args.shadow_models,
        attack_options=parse_attack_options(args.attack_option),
        recipe=recipe,
        n_bootstrap=args.bootstrap,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        target_url=args.target if source is None else None,
        api_key=args.api_key,
        target=source,
        own_data=own,
        shadow_model=args.shadow_model,
        shadow_recipe=_key_values("--shadow-recipe", args.shadow_recipe),
    )


def print_record(args: argparse.Namespace, record: object, written: str) -> None:
    """The audit's table, verdict, warnings and notes on the console (or the record as JSON)."""
    from miaudit.attacks import ATTACKS
    from miaudit.threat import short_description

    summary = record.summary  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    out = console(args)
    target, data = summary["target"], summary["dataset"]
    table = Table(
        title=f"{data['name']} / {target['model']} / seed {target['seed']} / threat model {summary['threat_model']}",
        caption="balanced accuracy at each attack's own threshold ('-': uncalibrated, no threshold); n/m = not measurable",
    )
    for col in ("attack", "knowledge (output/model/training/data)", "AUC [95% CI]", "TPR@1%FPR", "TPR@0.1%FPR", "balanced acc", "queries/record"):
        table.add_column(col, justify="left" if col in ("attack",) or col.startswith("knowledge") else "right")
    for name, m in summary["attacks"].items():
        ci = f" [{m['auc_ci'][0]:.3f}, {m['auc_ci'][1]:.3f}]" if m.get("auc_ci") else ""
        table.add_row(
            name,
            short_description(ATTACKS.get(name).requirements),
            f"{m['auc']:.4f}{ci}",
            _fmt(m["tpr_at_fpr"].get("0.01")),
            _fmt(m["tpr_at_fpr"].get("0.001")),
            "-" if m.get("threshold") is None else _fmt(m.get("balanced_accuracy")),
            f"{m['queries_per_record']:g}",
        )
    out.print(table)
    for name, reason in summary["skipped"].items():
        out.print(f"skipped {name}: {reason}")
    ev = summary["evaluation"]
    out.print(
        f"target ({target['source']}): accuracy on members {target['train_accuracy']:.4f}, on non-members "
        f"{target['test_accuracy']:.4f}; {ev['members']} members, {ev['non_members']} non-members evaluated"
    )
    for note in ev["notes"]:
        out.print(f"note: {note}")
    for warning in summary.get("warnings", []):
        out.print(f"[bold yellow]warning:[/] {warning}")
    verdict = summary.get("verdict")
    if verdict:
        out.print(f"[bold]verdict: {verdict['level']}[/] - {verdict['headline']}")
    out.print(f"wrote {written}")


def leak_gate(text: str) -> str:
    """The ``--fail-on-leak`` level: a leak level (low, medium, high), checked before any training."""
    from miaudit.verdict import parse_level

    level = parse_level(text)
    if level not in ("low", "medium", "high"):
        raise ConfigError(f"--fail-on-leak takes a leak level: low, medium or high (got {text!r})")
    return level


def exit_code(args: argparse.Namespace, record: object) -> int:
    """1 when --fail-on-leak LEVEL is given and the verdict reaches it, else 0."""
    from miaudit.verdict import level_at_least

    verdict = record.verdict  # type: ignore[attr-defined]
    if args.fail_on_leak and verdict is not None and level_at_least(verdict.level, args.fail_on_leak):
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from miaudit.experiments import run_audit
    from miaudit.models.executors import executor_from_options

    if args.fail_on_leak:
        args.fail_on_leak = leak_gate(args.fail_on_leak)
    config = config_from_args(args)
    with claimed_out(args, "results/audit") as out_dir:
        executor = executor_from_options(args.executor or "local", ray_address=args.ray_address, workers=args.workers)
        try:
            result = run_audit(config, progress=not (args.quiet or args.json), executor=executor)
        finally:
            executor.close()
        record = result.record()
        paths = record.write(out_dir, report=not args.no_report)
    if args.save_target:
        _save_target(result, Path(args.save_target))
    print_record(args, record, ", ".join(str(p) for p in paths.values()))
    return exit_code(args, record)


COMMANDS.add("audit", Command("Audit a model: train the target, run the attacks, report.", _configure, _run, torch=True))
