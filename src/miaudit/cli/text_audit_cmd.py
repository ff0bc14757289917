"""``miaudit audit-text``: a membership audit of a language model (trained here, your own folder, or
a model served by ``miaudit serve-text``: ``--endpoint URL``)."""

from __future__ import annotations

import argparse

from miaudit.cli.common import COMMANDS, Command, add_data_dir_flag, add_output_flags, claimed_out, console, parse_name_list


def _configure(p: argparse.ArgumentParser) -> None:
    own = p.add_argument_group("your own model (all three together)")
    own.add_argument("--model-dir", default=None, help="a Hugging Face causal-LM folder (safetensors weights, no remote code)")
    own.add_argument("--endpoint", default=None, metavar="URL",
                     help="instead of --model-dir: a model served by `miaudit serve-text` (black box: token log-probabilities)")  # fmt: skip
    own.add_argument("--api-key", default=None, metavar="KEY", help="API key for --endpoint (sent as X-API-Key, never recorded)")
    own.add_argument("--train", default=None, help="its members: .txt (one document per line) or .jsonl (field text)")
    own.add_argument("--test", default=None, help="documents it did not train on, same formats")
    own.add_argument("--reference-dir", default=None, help="a reference LM folder for the reference attack (optional)")
    own.add_argument("--reference-base", default=None,
                     help="the public model folder your model was fine-tuned from (optional, with --pool-file): fine-tuned on halves of the pool with --epochs / --lr into --references reference LMs for LiRA and RMIA")  # fmt: skip
    own.add_argument("--pool-file", default=None,
                     help="your own text the model did NOT train on, not in --train/--test (optional): DC-PDD's token frequencies, ReCaLL's prefix")  # fmt: skip
    here = p.add_argument_group("a model trained here")
    here.add_argument("--corpus", default="fortunes", help="a registered offline corpus (default fortunes: Debian package fortunes)")
    here.add_argument("--members", type=int, default=300, help="documents the target trains on (default 300)")
    here.add_argument("--nonmembers", type=int, default=300, help="documents it does not (default 300)")
    here.add_argument("--pool", type=int, default=300, help="the attacker's own documents, for its reference LM (default 300)")
    here.add_argument("--public", type=int, default=2000, help="public text for the tokenizer and pre-training (default 2000)")
    here.add_argument("--size", default="tiny", help="model size: tiny or small (default tiny)")
    here.add_argument("--setting", default="fine-tune", help="fine-tune (pre-train on public text, then members) or scratch")
    here.add_argument("--epochs", type=int, default=10, help="epochs on the members (default 10); with --reference-base: the target's fine-tuning epochs, which the references copy")
    here.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate of the fine-tuning (default 1e-3); with --reference-base: the target's, which the references copy")
    here.add_argument("--pretrain-epochs", type=int, default=2, help="epochs on the public text when fine-tuning (default 2)")
    here.add_argument("--references", type=int, default=8,
                      help="K reference LMs for LiRA and RMIA, trained like the target on halves of the pool (online: also of the evaluated documents); default 8")  # fmt: skip
    here.add_argument("--shift", default=None, help="source: members and non-members from different sources ON PURPOSE (a blind-baseline check)")
    p.add_argument("--attacks", default=None, help="comma-separated text attacks (default: every one the inputs permit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="results folder (default results/audit-text)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--no-cache", action="store_true", help="train the reference LMs afresh and cache nothing (default: their weights are cached by content hash)")
    add_data_dir_flag(p)
    add_output_flags(p)


def _run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from miaudit.text.audit import TextAuditConfig, run_text_audit

    hf_logging.set_verbosity_error()  # transformers' advisory warnings would bury the table

    config = TextAuditConfig(
        corpus=args.corpus, members=args.members, nonmembers=args.nonmembers, pool=args.pool, public=args.public, size=args.size,
        setting=args.setting, epochs=args.epochs, pretrain_epochs=args.pretrain_epochs, attacks=parse_name_list("--attacks", args.attacks), references=args.references,
        shift=args.shift, seed=args.seed, model_dir=args.model_dir, reference_dir=args.reference_dir, reference_base=args.reference_base, lr=args.lr,
        train_file=args.train, test_file=args.test, pool_file=args.pool_file, endpoint=args.endpoint, data_dir=args.data_dir,
        use_cache=not args.no_cache,
    )  # fmt: skip
    if args.api_key is not None and args.endpoint is None:
        from miaudit.errors import ConfigError

        raise ConfigError("--api-key goes with --endpoint (the served model's key)")
    with claimed_out(args, "results/audit-text", uses_cache=not args.no_cache) as out_dir:
        record = run_text_audit(config, api_key=args.api_key)
        paths = record.write(out_dir, report=not args.no_report)
    if args.json:
        print(record.to_json(), end="")
        return 0
    out = console(args)
    out.print(record.table().to_string(index=False), markup=False, highlight=False, soft_wrap=True)
    for note in record.summary["evaluation"].get("notes", []):
        out.print(note, markup=False, highlight=False, soft_wrap=True)
    verdict = record.verdict
    if verdict is not None:
        out.print(verdict.headline, markup=False, highlight=False, soft_wrap=True)
    out.print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


COMMANDS.add("audit-text", Command("Membership audit of a language model: a small GPT trained here, or your own folder.", _configure, _run, torch=True))
