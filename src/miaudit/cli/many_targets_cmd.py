"""``miaudit many-targets``: reference-model attacks under the many-target protocol, power vs references."""

from __future__ import annotations

import argparse
import json

from miaudit.cli.common import COMMANDS, Command, add_data_dir_flag, add_executor_flags, add_output_flags, claimed_out, console, parse_int_list, parse_name_list
from miaudit.errors import ConfigError


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="a registered data set (see `miaudit datasets list`)")
    p.add_argument("--models", type=int, default=64, help="models trained on paired random halves (default 64)")
    p.add_argument("--targets", type=int, default=4, help="how many of them play the target in turn (default 4)")
    p.add_argument("--reference-counts", default="1,2,4,8,16,64", help="reference models per record (default 1,2,4,8,16,64)")
    p.add_argument("--attacks", default=None, help="comma-separated: loss, attack-r, lira, lira-offline, rmia, rmia-offline (default all)")
    p.add_argument("--model", default=None, help="architecture (default: the data set's)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--subset", type=int, default=None, help="use a seeded random subset of this many records")
    p.add_argument("--augmentation", default="none", help="LiRA query views: none, flip, flip-shift, auto (default none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="results folder (default results/many-targets-<dataset>)")
    p.add_argument("--cache-dir", default=None, help="model cache (default: $MIAUDIT_CACHE_DIR or ~/.miaudit/cache)")
    add_data_dir_flag(p)
    add_executor_flags(p)
    add_output_flags(p)


def _run(args: argparse.Namespace) -> int:
    from miaudit.experiments.many_targets import ManyTargetConfig, format_table, run_many_targets, to_dict, write_many_targets

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.subset is not None and args.subset < 4:
        raise ConfigError(f"--subset must be >= 4 records, got {args.subset}")
    config = ManyTargetConfig(
        dataset=args.dataset,
        n_models=args.models,
        n_targets=args.targets,
        reference_counts=parse_int_list("--reference-counts", args.reference_counts),
        attacks=parse_name_list("--attacks", args.attacks),
        model=args.model,
        recipe={"epochs": args.epochs} if args.epochs is not None else {},
        subset=args.subset,
        augmentation=args.augmentation,
        seed=args.seed,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
    )
    from miaudit.models.executors import executor_from_options

    with claimed_out(args, f"results/many-targets-{args.dataset}") as out_dir:
        executor = executor_from_options(args.executor or "local", ray_address=args.ray_address, workers=args.workers)
        try:
            result = run_many_targets(config, progress=not (args.quiet or args.json), executor=executor)
        finally:
            executor.close()
        json_path, md_path = write_many_targets(result, out_dir)
    if args.json:
        print(json.dumps(to_dict(result), indent=2))
        return 0
    out = console(args)
    out.print(
        f"{args.dataset}: {result.models_trained} models on paired halves of {result.n_records} records, "
        f"{config.n_targets} targets; training {result.train_seconds:.1f} s, scoring {result.score_seconds:.1f} s"
    )
    out.print(format_table(result), markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {json_path} and {md_path}")
    return 0


COMMANDS.add(
    "many-targets",
    Command("Reference-model attacks (LiRA, RMIA, Attack-R) under the many-target protocol.", _configure, _run, torch=True),
)
