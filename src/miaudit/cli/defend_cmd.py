"""``miaudit defend``: train defended targets, attack each, write the privacy-utility table and plot."""

from __future__ import annotations

import argparse
import json

from miaudit.cli.common import COMMANDS, Command, add_data_dir_flag, add_output_flags, claimed_out, console, parse_name_list
from miaudit.errors import ConfigError


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="location30", help="registered data set (default location30)")
    p.add_argument(
        "--defenses",
        default="none,dpsgd,advreg,memguard,dmp",
        help="defense specs separated by commas, parameters after a colon: "
        "'none,dpsgd:epsilon=1,memguard:budget=0.5' (see `miaudit defenses`)",
    )
    p.add_argument("--preset", default=None, help="take model, recipe and split from a reproduction preset (e.g. song-mittal-location30)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--attacks", default=None, help="comma-separated attacks (default: every attack the threat model permits)")
    p.add_argument("--attacker", choices=["adaptive", "naive"], default="adaptive",
                   help="adaptive: shadow models built with the defense (default); naive: undefended shadows")  # fmt: skip
    p.add_argument("--reference", type=int, default=None, help="records held by the defender as reference data (default: the target's training-set size)")
    p.add_argument(
        "--split",
        default=None,
        metavar="IN,OUT,POOL",
        help="target members, evaluated non-members and attacker's pool (records); the defender's reference set is --reference",
    )
    p.add_argument("--shadow-models", type=int, default=None, help="shadow models per attack (default: the preset's, at least 2, or 4)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (a quick run, not the protocol)")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap resamples of the evaluated records per seed, for the intervals (0: none; default 200)")  # fmt: skip
    p.add_argument("--out", default=None, help="results folder (default results/defend-<dataset>)")
    p.add_argument("--cache-dir", default=None, help="model cache (default: $MIAUDIT_CACHE_DIR or ~/.miaudit/cache)")
    add_data_dir_flag(p)
    add_output_flags(p)


def _run(args: argparse.Namespace) -> int:
    from miaudit.attacks import ATTACKS
    from miaudit.cli.reproduce_cmd import parse_seeds
    from miaudit.defenses import parse_defenses
    from miaudit.experiments.defend import DefendConfig, markdown_table, run_defend, write_defend

    defenses = parse_defenses(args.defenses)  # unknown names fail here, before any training
    attacks = None
    if args.attacks is not None:
        attacks = parse_name_list("--attacks", args.attacks)
        for name in attacks:
            ATTACKS.get(name)
    for flag, value in (("--reference", args.reference), ("--shadow-models", args.shadow_models), ("--epochs", args.epochs)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    if args.bootstrap < 0 or args.bootstrap == 1:
        raise ConfigError(f"--bootstrap must be 0 (no intervals) or >= 2, got {args.bootstrap}")
    split = None
    if args.split is not None:
        from miaudit.cli.common import parse_int_list
        from miaudit.data.split import SplitSizes

        sizes = parse_int_list("--split", args.split)
        if len(sizes) != 3 or min(sizes) < 1:
            raise ConfigError(f"--split takes three positive record counts IN,OUT,POOL, got {args.split!r}")
        split = SplitSizes(target_in=sizes[0], target_out=sizes[1], attacker_pool=sizes[2], population=args.reference or sizes[0])
    config = DefendConfig(
        dataset=args.dataset,
        split=split,
        defenses=tuple(d.spec() for d in defenses),
        seeds=parse_seeds(args.seeds),
        preset=args.preset,
        attacks=attacks,
        adaptive=args.attacker == "adaptive",
        reference=args.reference,
        n_shadow_models=args.shadow_models,
        epochs=args.epochs,
        n_bootstrap=args.bootstrap,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
    )
    con = console(args)
    with claimed_out(args, f"results/defend-{args.dataset}") as out:
        study = run_defend(config, log=con.print, out_dir=out)
        paths = write_defend(study, out)
    if args.json:
        print(json.dumps({"rows": [{k: v for k, v in r.items() if k != "per_attack"} for r in study["rows"]],
                          "files": {k: str(v) for k, v in paths.items()}}, indent=2))  # fmt: skip
        return 0
    con.print(markdown_table(study))
    con.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


COMMANDS.add("defend", Command("train defended targets, attack each, write a privacy-utility table and plot", _configure, _run, torch=True))
