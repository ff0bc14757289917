"""A membership audit of a language model: documents in, the audit record out (``miaudit audit-text``).

Two targets, one pipeline:

- **trained here** (``model_dir=None``): a corpus of :data:`~miaudit.text.corpus.TEXT_CORPORA`
  is split i.i.d. into members, non-members, the attacker's pool and public text; a byte-level
  BPE tokenizer and a small GPT (:data:`~miaudit.text.lm.LM_SIZES`) are trained on the public
  text; the target is that model fine-tuned on the members (``setting="fine-tune"``, the
  setting users audit most) or trained on them from scratch (``"scratch"``);
- **the user's own** (``model_dir``): a Hugging Face causal-LM folder (safetensors only, no
  remote code: :func:`~miaudit.text.lm_folder.load_lm`) and the user's members and non-members
  files (:func:`~miaudit.text.corpus.read_documents`); or (``endpoint``) such a model served
  by ``miaudit serve-text``, read through :class:`~miaudit.text.lm_endpoint.LMEndpoint` (a
  black-box API returning token log-probabilities: the same statistics, checked on arrival).

Threat model (gray box, the LLM audits' usual one): the attacker queries the target for the
log-probability of every token (and, for min-k%++, the whole next-token distribution); it
holds its own text (the pool) and may train a reference LM on it. Trained here, the reference
is the public pre-trained model fine-tuned on the pool exactly as the target was on the
members (Carlini et al. 2021's reference model, the same recipe on other data); for a user's
model, ``reference_dir`` names one, else the reference attack is skipped with its reason.
LiRA and RMIA (:mod:`miaudit.text.reference_attacks`) use ``references`` (K) reference LMs from
the same start and recipe, each on a random half of the pool, online also on a half of the
evaluated documents (:mod:`miaudit.text.reference_lms`: the attacker holds the candidates, not
their membership); for a user's model they are trained from ``reference_base`` (the public model
the target was fine-tuned from, ``--reference-base``) on halves of ``pool_file``, else skipped
with their reason.
DC-PDD's token frequencies are counted over the pool with the target's tokenizer, and
ReCaLL's prefix is the first :attr:`TextAuditConfig.recall_shots` pool documents: the pool is
known NOT to be in the target's training set only when the target is trained here. For a
user's model the pool is ``pool_file`` (``--pool-file``), text the user vouches the model did
not train on; without one both attacks are skipped with their reason (the ``--test``
documents are evaluated records, so they are never the prefix or the frequency text).
Membership truth reaches only the metrics, the verdict and the blind baseline
(:mod:`miaudit.text.blind`), which is reported beside the attacks as a check of the split,
never as an attack.

The record is the classifier audits' (:func:`miaudit.core.record.record_from_scores`):
``results.json``, ``scores.csv`` (record index: members first, then non-members) and the report.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import ConfigError

#: Text attacks strongest-first by the literature (mimir, Duan et al. 2024; Zhang et al. 2024):
#: the verdict's headline is the first one that ran. Fixed in advance, never from the truth.
#: ReCaLL and DC-PDD (both EMNLP 2024) report gains over min-k%++ on WikiMIA-style benchmarks,
#: whose members and non-members differ in time; on i.i.d. splits that is unproven, so they
#: rank after min-k%++.
TEXT_HEADLINE_ORDER: tuple[str, ...] = (
    "lira", "rmia", "lira-offline", "rmia-offline", "reference", "min-k-plus-plus", "recall", "dc-pdd", "min-k", "zlib", "loss",
)  # fmt: skip
SETTINGS = ("fine-tune", "scratch")


@dataclass(frozen=True)
class TextAuditConfig:
    """One text audit. Trained here: ``corpus`` and the split sizes (documents), the model
    ``size``, ``setting``, ``epochs`` on the members (and ``pretrain_epochs`` on public text for
    fine-tuning), the learning rate; own model: ``model_dir`` with ``train_file`` (members) and
    ``test_file`` (non-members), optionally ``reference_dir`` and ``pool_file`` (the attacker's
    own text, known not to be members: DC-PDD's frequencies, ReCaLL's prefix) and
    ``reference_base``: the public model the target was fine-tuned from, which the attacker
    fine-tunes on halves of the pool with ``epochs`` and ``lr`` (the target's recipe as the user
    knows it) into the K reference LMs, and on the whole pool into the reference attack's LM
    when no ``reference_dir`` is given. ``references``: K
    reference LMs for LiRA and RMIA (each variant, online and offline, trains its own K).
    ``recall_shots``: pool documents in ReCaLL's prefix. ``attacks=None`` runs every registered
    text attack the inputs permit."""

    corpus: str = "fortunes"
    members: int = 300
    nonmembers: int = 300
    pool: int = 300
    public: int = 2000
    size: str = "tiny"
    setting: str = "fine-tune"
    epochs: int = 10
    pretrain_epochs: int = 2
    lr: float = 1e-3
    vocab_size: int = 512
    attacks: tuple[str, ...] | None = None
    references: int = 8
    shift: str | None = None
    seed: int = 0
    model_dir: str | None = None
    reference_dir: str | None = None
    reference_base: str | None = None
    train_file: str | None = None
    test_file: str | None = None
    pool_file: str | None = None
    endpoint: str | None = None  # a miaudit serve-text URL instead of model_dir (its key is passed apart, never recorded)
    recall_shots: int = 4
    data_dir: str | None = None
    use_cache: bool = True  # reference LMs' weights cached by content hash (MIAUDIT_CACHE_DIR), as the classifiers'

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ConfigError(f"unknown setting {self.setting!r}; choose one of: {', '.join(SETTINGS)}")
        if self.endpoint is not None:
            if self.model_dir is not None:
                raise ConfigError("--endpoint and --model-dir are exclusive: the target is a served model or a folder, not both")
            if self.train_file is None or self.test_file is None:
                raise ConfigError("auditing a served language model needs --endpoint, --train (members) and --test (non-members) together")
        own = (self.model_dir or self.endpoint, self.train_file, self.test_file)
        if any(v is not None for v in own) and any(v is None for v in own):
            raise ConfigError("auditing your own language model needs --model-dir, --train (members) and --test (non-members) together")
        if self.reference_dir is not None and not self.own_model:
            raise ConfigError("--reference-dir is for your own model (--model-dir); a model trained here trains its reference itself")
        from miaudit.text.reference_lms import check_references

        check_references(self.references)
        if self.reference_base is not None and (not self.own_model or self.pool_file is None):
            raise ConfigError("--reference-base goes with --model-dir (or --endpoint) and --pool-file: the reference LMs are that base fine-tuned on your own text")
        if self.pool_file is not None and not self.own_model:
            raise ConfigError("--pool-file is for your own model (--model-dir); a model trained here takes the attacker's pool from the corpus (--pool)")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be a positive number (the fine-tuning learning rate), got {self.lr!r}")
        if isinstance(self.recall_shots, bool) or not isinstance(self.recall_shots, int) or self.recall_shots < 1:
            raise ConfigError(f"recall_shots must be a positive whole number (pool documents in ReCaLL's prefix), got {self.recall_shots!r}")

    @property
    def own_model(self) -> bool:
        return self.model_dir is not None or self.endpoint is not None


@dataclass(frozen=True)
class _Prepared:
    target: Any
    reference: Any
    tokenizer: Any
    reference_tokenizer: Any
    members: tuple[str, ...]
    nonmembers: tuple[str, ...]
    description: dict[str, Any]
    reference_sets: dict[str, Any]
    pool: tuple[str, ...] = ()  # the attacker's own text, known not to be members


def _train_here(config: TextAuditConfig, variants: set[str]) -> _Prepared:
    """The corpus split, the tokenizer and public model, the target, the attacker's reference and
    its K reference LMs of each of ``variants`` (online, offline) for LiRA and RMIA."""
    from miaudit.text.corpus import load_corpus_with_sources, split_documents
    from miaudit.text.lm import build_lm, lm_config, train_lm, train_tokenizer

    cfg = lm_config(config.size)
    docs, sources = load_corpus_with_sources(config.corpus, Path(config.data_dir) if config.data_dir else None)
    split = split_documents(docs, members=config.members, nonmembers=config.nonmembers, pool=config.pool, public=config.public,
                            seed=config.seed, sources=sources, shift=config.shift)  # fmt: skip
    tokenizer = train_tokenizer(split.public, vocab_size=config.vocab_size, seed=config.seed)
    base = build_lm(cfg, len(tokenizer), config.seed, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    recipe = {"lr": config.lr, "seed": config.seed}
    if config.setting == "fine-tune":
        train_lm(base, tokenizer, split.public, epochs=config.pretrain_epochs, **recipe)
    # the reference: the same start and recipe on the attacker's pool (empty pool: no reference)
    reference = train_lm(copy.deepcopy(base), tokenizer, split.pool, epochs=config.epochs, **recipe) if split.pool else None
    evaluated = [*split.members, *split.nonmembers]  # the order run_text_audit scores them in
    target = train_lm(copy.deepcopy(base), tokenizer, split.members, epochs=config.epochs, **recipe)
    sets = _reference_sets(config, variants, base, tokenizer, target, list(split.pool), evaluated, {"epochs": config.epochs, **recipe})
    description = {
        "source": "trained here", "corpus": config.corpus, "split": split.how, "size": config.size, "lm_config": asdict(cfg),
        "setting": config.setting, "epochs": config.epochs, "pretrain_epochs": config.pretrain_epochs if config.setting == "fine-tune" else 0,
        "lr": config.lr, "vocab_size": len(tokenizer), "pool": len(split.pool), "public": len(split.public),
        "reference": "the public model fine-tuned on the attacker's pool with the target's recipe" if reference is not None else None,
        "reference_lms": {v: config.references for v in sorted(variants)},
    }  # fmt: skip
    return _Prepared(target, reference, tokenizer, tokenizer, split.members, split.nonmembers, description, sets, tuple(split.pool))


def _own_model(config: TextAuditConfig, variants: set[str], api_key: str | None = None) -> _Prepared:
    from miaudit.text.corpus import read_documents
    from miaudit.text.lm import train_lm
    from miaudit.text.lm_folder import load_lm

    members, nonmembers = tuple(read_documents(config.train_file)), tuple(read_documents(config.test_file))  # type: ignore[arg-type]
    overlap = set(members) & set(nonmembers)
    if overlap:
        raise ConfigError(f"{len(overlap)} document(s) are in both --train and --test; a document is a member or not, remove the repeats")
    pool = tuple(read_documents(config.pool_file)) if config.pool_file else ()
    evaluated = set(pool) & (set(members) | set(nonmembers))
    if evaluated:
        raise ConfigError(f"{len(evaluated)} --pool-file document(s) are also in --train or --test; the pool is the attacker's own text, never an evaluated record")
    base = _reference_base(config, pool)  # loaded before the target: a wrong base fails first
    if config.endpoint is not None:
        from miaudit.text.lm_endpoint import LMEndpoint

        target, tokenizer = LMEndpoint(config.endpoint, api_key=api_key), None
        source = {"source": "endpoint", "endpoint": target.url, "model_type": target.model_type}
    else:
        target, tokenizer = load_lm(config.model_dir)  # type: ignore[arg-type]
        source = {"source": "model folder", "model_dir": str(config.model_dir), "model_type": getattr(target.config, "model_type", None)}
    reference, ref_tokenizer = load_lm(config.reference_dir) if config.reference_dir else (None, None)
    description = {**source, "reference_dir": config.reference_dir, "pool_file": config.pool_file, "pool": len(pool)}
    sets: dict[str, Any] = {}
    if base is not None:
        base_model, base_tokenizer = base
        sample = [*members[:50], *pool[:50]]
        if tokenizer is None:  # an endpoint: the references and the reference attack use the base's tokenizer, if it is the server's
            _check_endpoint_tokenizer(target, base_model, base_tokenizer, sample)
            tokenizer = base_tokenizer
        else:
            _check_same_tokenizer(tokenizer, base_tokenizer, sample)
        recipe = {"epochs": config.epochs, "lr": config.lr, "seed": config.seed}
        if reference is None:
            reference, ref_tokenizer = train_lm(copy.deepcopy(base_model), tokenizer, list(pool), **recipe), tokenizer
            description["reference"] = "--reference-base fine-tuned on the whole pool with the stated recipe"
        sets = _reference_sets(config, variants, base_model, tokenizer, target, list(pool), [*members, *nonmembers], recipe)
        description.update(reference_base=config.reference_base, reference_recipe=recipe, reference_lms={v: config.references for v in sorted(variants)})
    return _Prepared(target, reference, tokenizer, ref_tokenizer, members, nonmembers, description, sets, pool)


def _reference_base(config: TextAuditConfig, pool: tuple[str, ...]) -> tuple[Any, Any] | None:
    from miaudit.text.lm_folder import load_lm

    if config.reference_base is None:
        return None
    if len(pool) < 2:
        raise ConfigError("--reference-base needs a --pool-file of at least 2 documents: the reference LMs train on halves of it")
    return load_lm(config.reference_base)


def _check_endpoint_tokenizer(endpoint: Any, base_model: Any, base_tokenizer: Any, sample: list[str]) -> None:
    """The base must split text as the served model does, in the same context length."""
    from miaudit.text.lm import _context

    served = [list(ids) for ids in endpoint.token_ids(sample)]
    mine = [base_tokenizer(t, add_special_tokens=False)["input_ids"] for t in sample]
    if len(base_tokenizer) != endpoint.vocab_size or served != mine:
        raise ConfigError("--reference-base has another tokenizer than the --endpoint's model; give the model it was fine-tuned from")
    if _context(base_model) != endpoint.context_length:
        raise ConfigError(f"--reference-base has a {_context(base_model)}-token context, the --endpoint's model {endpoint.context_length}; give the model it was fine-tuned from")


def _check_same_tokenizer(target: Any, base: Any, sample: list[str]) -> None:
    """The references are scored with the target's tokenizer, so the base must share it."""
    same = len(target) == len(base) and all(
        target(t, add_special_tokens=False)["input_ids"] == base(t, add_special_tokens=False)["input_ids"] for t in sample
    )
    if not same:
        raise ConfigError("--reference-base has another tokenizer than --model-dir; give the model the target was fine-tuned from")


def _reference_sets(config: TextAuditConfig, variants: set[str], base: Any, tokenizer: Any, target: Any, pool: list[str],
                    evaluated: list[str], recipe: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """K reference LMs of each of ``variants`` from ``base`` (left untouched) with ``recipe``,
    with the target's statistics of the pool (RMIA's population)."""
    from miaudit.models.cache import ModelCache
    from miaudit.text.lm_endpoint import lm_scorer
    from miaudit.text.reference_lms import train_reference_set

    cache = ModelCache() if config.use_cache else None
    sets = {v: train_reference_set(base, tokenizer, variant=v, k=config.references, pool=pool, evaluated=evaluated, cache=cache, **recipe)
            for v in sorted(variants)}  # fmt: skip
    if not sets:
        return {}
    on_pool = tuple(lm_scorer(target, tokenizer).token_statistics(pool))  # a folder's or an endpoint's
    return {v: dataclasses.replace(s, target_population=on_pool) for v, s in sets.items()}


def _selected(config: TextAuditConfig) -> tuple[list[str], dict[str, str]]:
    """The attacks to run and the skipped ones with their reasons, decided from the config
    alone (before any training, so an unknown name fails first)."""
    from miaudit.text.attacks import EXTRA_INPUTS, TEXT_ATTACKS
    from miaudit.text.reference_attacks import reference_attack_names

    own_references = config.reference_base is not None  # the config checked that a pool file comes with it
    has_reference = (config.reference_dir is not None or own_references) if config.own_model else config.pool > 0
    has_pool = config.pool_file is not None if config.own_model else config.pool > 0

    names = list(config.attacks) if config.attacks else TEXT_ATTACKS.names()
    for name in names:
        if name not in TEXT_ATTACKS:
            raise ConfigError(f"unknown text attack {name!r}; choose from: {', '.join(TEXT_ATTACKS.names())}")
    skipped = {}
    if not has_reference:
        for name in [n for n in names if TEXT_ATTACKS.get(n).needs_reference]:
            names.remove(name)
            skipped[name] = "needs a reference LM: give --reference-dir (trained here: a non-empty --pool)"
    if (config.own_model and not own_references) or (not config.own_model and config.pool < 2):
        for name in [n for n in names if n in reference_attack_names()]:
            names.remove(name)
            skipped[name] = ("needs K reference LMs trained like the target: give --reference-base (the model it was fine-tuned from) and --pool-file"
                             if config.own_model else "needs K reference LMs trained on an attacker's pool of at least 2 documents: raise --pool")  # fmt: skip
    if not has_pool:
        for name in [n for n in names if n in EXTRA_INPUTS]:
            names.remove(name)
            skipped[name] = "needs the attacker's own text known not to be members: give --pool-file (trained here: a non-empty --pool)"
    if not names:
        raise ConfigError("no text attack can run with these inputs; " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return names, skipped


def run_text_audit(config: TextAuditConfig, *, api_key: str | None = None) -> Any:
    """Prepare the target (trained here or the user's), score every permitted text attack on the
    members and non-members, and return the :class:`~miaudit.core.record.AuditRecord`.
    ``api_key``: for ``config.endpoint`` (kept out of the record)."""
    from miaudit.core.record import record_from_scores
    from miaudit.text.attacks import TEXT_ATTACKS
    from miaudit.text.blind import blind_baseline
    from miaudit.text.lm import token_statistics
    from miaudit.text.lm_endpoint import lm_scorer
    from miaudit.text.reference_attacks import reference_attack_names

    names, skipped = _selected(config)
    variants = {TEXT_ATTACKS.get(n).variant for n in names if n in reference_attack_names()}
    prepared = _own_model(config, variants, api_key) if config.own_model else _train_here(config, variants)
    texts = [*prepared.members, *prepared.nonmembers]
    is_member = np.r_[np.ones(len(prepared.members), dtype=bool), np.zeros(len(prepared.nonmembers), dtype=bool)]
    target_stats = lm_scorer(prepared.target, prepared.tokenizer).token_statistics(texts)
    reference_stats = None
    if prepared.reference is not None and any(TEXT_ATTACKS.get(n).needs_reference for n in names):
        reference_stats = token_statistics(prepared.reference, prepared.reference_tokenizer, texts)
    options, option_notes = _extra_inputs(config, prepared, names, texts)
    scores = {
        n: TEXT_ATTACKS.get(n).score(target_stats, texts, references=prepared.reference_sets[TEXT_ATTACKS.get(n).variant])
        if n in reference_attack_names() else TEXT_ATTACKS.get(n).score(target_stats, texts, reference_stats, **options.get(n, {}))
        for n in names
    }  # fmt: skip
    blind = blind_baseline(prepared.members, prepared.nonmembers, seed=config.seed)
    notes = [
        f"Blind baseline (Das et al. 2024: a bag-of-words classifier on the text alone, cross-fitted on the evaluated records' "
        f"membership, a check of the split, not an attack): AUC {blind.auc:.3f} (chance stays below {0.5 + blind.tolerance:.3f}); "
        f"{blind.verdict}.",
        *option_notes,
        *(f"Skipped {k}: {v}." for k, v in skipped.items()),
    ]
    details = {n: {"paper": TEXT_ATTACKS.get(n).paper, "threat": list(TEXT_ATTACKS.get(n).threat)} for n in names}
    for n in set(names) & set(reference_attack_names()):
        details[n].update(variant=TEXT_ATTACKS.get(n).variant, reference_models=config.references, statistic="mean token log-likelihood")
    if "rmia-offline" in names:
        notes.append(_offline_a_note(prepared.reference_sets["offline"], details["rmia-offline"]))
    mean_tokens = float(np.mean([s.n_tokens for s in target_stats]))
    dataset = {"name": config.corpus if not config.own_model else "own documents", "kind": "text", "records": len(texts),
               "num_classes": "none (text)", "fingerprint": _fingerprint(texts), "members": len(prepared.members),
               "nonmembers": len(prepared.nonmembers), "mean_tokens": mean_tokens,
               "blind_baseline": {"auc": blind.auc, "tolerance": blind.tolerance, "verdict": blind.verdict}}  # fmt: skip
    target = {**prepared.description, "perplexity_members": _perplexity(target_stats, is_member),
              "perplexity_nonmembers": _perplexity(target_stats, ~is_member)}  # fmt: skip
    record = record_from_scores(
        kind="text", dataset=dataset, target=target, config=asdict(config), threat_model=_threat_model(config),
        scores=scores, is_member=is_member, record_indices=np.arange(len(texts)), details=details, notes=notes,
        seed=config.seed, headline_order=TEXT_HEADLINE_ORDER,
    )  # fmt: skip
    return record.with_excerpts(texts)  # the report shows the most exposed documents as text


def _offline_a_note(references: Any, details: dict[str, Any]) -> str:
    """Record RMIA-offline's ``a`` (chosen on the attacker's own reference LMs, never the truth)
    in ``details`` and say how it was chosen."""
    from miaudit.text.reference_attacks import choose_offline_a

    choice = choose_offline_a(references)
    details.update(a=choice.a, a_source=choice.source, a_stand_in_auc={str(k): v for k, v in choice.stand_in_auc.items()})
    return f"RMIA-offline: a = {choice.a:g}, {choice.source}."


def _extra_inputs(config: TextAuditConfig, prepared: _Prepared, names: list[str], texts: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The keyword options of the attacks that need more than the statistics (DC-PDD's frequency
    table, ReCaLL's conditional statistics), all from the attacker's pool, and a note on each."""
    from miaudit.text.attacks import recall_prefix
    from miaudit.text.lm_endpoint import lm_scorer

    scorer = lm_scorer(prepared.target, prepared.tokenizer)
    options: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if "dc-pdd" in names:
        options["dc-pdd"] = {"frequencies": scorer.token_frequencies(prepared.pool)}
        notes.append(f"DC-PDD: token frequencies from the attacker's {len(prepared.pool)} pool documents (the target's tokenizer, Laplace-smoothed), a = 0.01.")
    if "recall" in names:
        shots = prepared.pool[: config.recall_shots]
        prefix = recall_prefix(shots, len(shots))
        conditional, used_list = scorer.conditional_token_statistics(texts, prefix)
        used = np.asarray(used_list)
        options["recall"] = {"conditional": conditional}
        notes.append(
            f"ReCaLL: prefix of {len(shots)} pool document(s), {int(used.max())} tokens at most; a document and its prefix share the "
            f"model's context, so documents got {used.mean():.1f} prefix tokens on average and {int((used == 0).sum())} of {len(texts)} got none "
            f"(those score about 1: no evidence)."
        )
    return options, notes


def _threat_model(config: TextAuditConfig) -> str:
    if config.endpoint is not None:
        return "black-box API (token log-probabilities, with the mean and variance of log p)"
    return "gray-box (token log-probabilities)"


def _perplexity(stats: list[Any], mask: np.ndarray) -> float:
    """exp of the mean negative token log-probability over the documents in ``mask`` (all their tokens)."""
    chosen = [s.logprob for s, keep in zip(stats, mask) if keep]
    return float(np.exp(-np.concatenate(chosen).mean()))


def _fingerprint(texts: list[str]) -> str:
    """sha256 of the evaluated documents in order (UTF-8, each followed by a NUL byte)."""
    import hashlib

    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()
