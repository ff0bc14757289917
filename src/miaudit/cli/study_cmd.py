"""``miaudit study NAME``: one of the survey's cause-analysis studies; writes a table and a plot."""

from __future__ import annotations

import argparse
import json

from miaudit.cli.common import COMMANDS, Command, add_data_dir_flag, add_output_flags, claimed_out, console, parse_name_list
from miaudit.cli.reproduce_cmd import parse_seeds
from miaudit.errors import ConfigError


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, help="overfitting | model-type | classes | feature-variance | per-record-risk | text-leakage (see --list)")
    p.add_argument("--list", action="store_true", help="list the studies and the survey claim each checks")
    p.add_argument("--dataset", default=None, help="registered data set or a CSV/.npz/image-folder path")
    p.add_argument("--label-column", default=None, help="label column of a CSV data set")
    p.add_argument("--model", default=None, help="target model (default: the data set's; model-type varies it)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; figures show mean ± std over them (default 0)")
    p.add_argument("--attacks", default=None, help="comma-separated attacks (default: loss,modified-entropy,lira-offline)")
    p.add_argument("--threat-model", default="gray-box", help="threat model the attacks run under (default gray-box)")
    p.add_argument("--shadow-models", type=int, default=4, help="shadow models per attack (default 4)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of torch targets (default: the data set's)")
    p.add_argument("--records", type=int, default=None, help="use this many random records of the data set (e.g. CIFAR-10 on a CPU)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="study settings, e.g. epochs=5,10,20 (repeatable; see --list)")
    p.add_argument("--out", default=None, help="output folder (default results/study-NAME); put it under an audit's RUN_DIR/studies/NAME to include it in that audit's report")
    p.add_argument("--cache-dir", default=None, help="model cache (default: $MIAUDIT_CACHE_DIR or ~/.miaudit/cache)")
    p.add_argument("--no-cache", action="store_true", help="train everything afresh and cache nothing")
    add_data_dir_flag(p)
    add_output_flags(p)


def _grid(items: list[str]) -> dict[str, str]:
    grid: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--grid takes KEY=V1,V2,..., got {item!r}")
        grid[key.strip()] = value.strip()
    return grid


def _run(args: argparse.Namespace) -> int:
    from miaudit.studies import DEFAULT_ATTACKS, STUDIES, StudyConfig, write_study

    out = console(args)
    if args.list or args.name is None:
        rows = [{"study": n, "claim": s.claim, "grid": s.grid_help} for n, s in STUDIES.items()]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                out.print(f"[bold]{r['study']}[/bold]: {r['claim']}" + (f"  (--grid {r['grid']})" if r["grid"] else ""))
        return 0 if args.list else 2
    study = STUDIES.get(args.name)
    if args.dataset is None:
        raise ConfigError("--dataset is required (a registered data set or a file)")
    if args.shadow_models < 1:
        raise ConfigError(f"--shadow-models must be >= 1, got {args.shadow_models}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    attacks = parse_name_list("--attacks", args.attacks) or DEFAULT_ATTACKS
    config = StudyConfig(
        dataset=args.dataset,
        seeds=parse_seeds(args.seeds),
        attacks=attacks,
        threat_model=args.threat_model,
        n_shadow_models=args.shadow_models,
        model=args.model,
        epochs=args.epochs,
        max_records=args.records,
        grid=_grid(args.grid),
        label_column=args.label_column,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
    )
    with claimed_out(args, f"results/study-{args.name}", uses_cache=not args.no_cache) as out_dir:
        result = study.run(config, not (args.quiet or args.json))
        paths = write_study(result, config, out_dir)
    if args.json:
        print(paths["json"].read_text())
        return 0
    out.print(f"[bold]{study.name}[/bold]: {study.claim}")
    out.print(json.dumps(json.loads(paths["json"].read_text())["findings"], indent=2))
    out.print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


COMMANDS.add("study", Command("Run a cause-analysis study (the survey's section 6): a table and a plot.", _configure, _run, torch=True))
