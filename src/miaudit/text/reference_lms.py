"""K reference language models for LiRA and RMIA on text (:mod:`miaudit.text.reference_attacks`).

Every reference starts from the same public pre-trained model as the target and is fine-tuned
with the target's recipe (epochs, learning rate, batch size) — Carlini et al.'s reference
models, the attacker knowing the training procedure:

- **offline**: reference k trains on a random half of the attacker's pool; it is OUT for every
  evaluated document;
- **online**: reference k trains on a random half of the pool **and on a half of the evaluated
  documents**, drawn by :func:`draw_memberships` so that each evaluated document is IN for
  exactly K/2 references, from the seed alone, never from the membership truth.

Threat model of the online variant (LiRA's, Carlini et al. 2022): the attacker holds the
evaluated documents as candidates (it queries the target on them) and trains on them itself;
it does not know which are members. The evaluated documents include the target's members, so
online references train on some of the target's training text: stronger than offline, and the
reason offline exists (an attacker that may not, or cannot, train per candidate set).

In both sets every pool document is IN for exactly K/2 references, so the pool serves as RMIA's
population with OUT references for each of its documents. :func:`train_reference_set` trains
the references together in banks (:mod:`miaudit.text.lm_bank`: the same models to float32
rounding, measured 1.6x faster per model at the ``tiny`` size) where the public model is a
GPT-2 the bank reproduces, small enough for a bank to pay
(:data:`~miaudit.text.lm_bank.BANK_MAX_PARAMS`) and fitting :data:`~miaudit.text.lm_bank.BANK_MEMORY_BYTES`;
otherwise one after another, each a deep copy of the public model. Each bank, or model, is
scored on the evaluated and population documents as soon as it is trained, and only the
statistics are kept.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from miaudit.errors import ConfigError
from miaudit.io_utils import stable_hash
from miaudit.models.cache import ModelCache, ModelKey, tensors_sha256
from miaudit.seeds import check_user_seed, stream_rng
from miaudit.text.reference_attacks import VARIANTS, ReferenceSet
from miaudit.text.stats import TokenStats

SEED_BOUND = 2**32


def draw_memberships(n_docs: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A (k, n_docs) boolean mask: each column (document) True for exactly k/2 of the k rows,
    uniformly at random and independently across documents. ``k`` even, at least 2."""
    check_references(k)
    ranks = np.argsort(rng.random((k, n_docs)), axis=0)  # per column a uniform permutation of 0..k-1
    return ranks < k // 2


def check_references(k: object) -> int:
    """``k`` as the number of reference LMs: an even whole number >= 2 (each document IN for k/2)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2 or k % 2:
        raise ConfigError(f"references must be an even whole number >= 2 (each document IN for half of them), got {k!r}")
    return k


def train_reference_set(
    base: Any,
    tokenizer: Any,
    *,
    variant: str,
    k: int,
    pool: Sequence[str],
    evaluated: Sequence[str],
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 16,
    cache: ModelCache | None = None,
) -> ReferenceSet:
    """Train ``k`` references from ``base`` (left untouched) and return their statistics on the
    ``evaluated`` documents and on the ``pool`` (the population), with the IN masks.

    ``cache``: each reference's weights are stored under a hash of what made them (the base's
    weights and config, the tokenizer, its training documents, the recipe and its seed;
    :func:`reference_key`) and read back instead of retrained.

    ``seed`` is the attacker's: the pool halves, the online IN mask and the references' training
    seeds all come from it, so the same seed gives the same references.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"reference variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    check_references(k)
    seed = check_user_seed(seed)
    pool, evaluated = list(pool), list(evaluated)
    if len(pool) < 2:
        raise ConfigError("reference LMs need an attacker's pool of at least 2 documents; raise --pool")
    rng = stream_rng(seed, "text/references", VARIANTS.index(variant))
    pool_in = draw_memberships(len(pool), k, rng)
    in_mask = draw_memberships(len(evaluated), k, rng) if variant == "online" else np.zeros((k, len(evaluated)), dtype=bool)
    seeds = rng.integers(0, SEED_BOUND, size=k)
    texts = [[d for d, keep in zip(pool, pool_in[row]) if keep] + [d for d, keep in zip(evaluated, in_mask[row]) if keep] for row in range(k)]
    recipe = {"epochs": epochs, "lr": lr, "batch_size": batch_size}
    seeds = [int(s) for s in seeds]
    scored = (evaluated, pool)
    # per reference (evaluated, pool) statistics, compacted as soon as they exist (see compact)
    statistics: dict[int, tuple[tuple[TokenStats, ...], ...]] = {}
    keys: list[ModelKey] = []
    if cache is not None:
        from miaudit.text.lm import token_statistics

        fingerprint = model_fingerprint(base, tokenizer)
        keys = [reference_key(fingerprint, texts[j], seeds[j], recipe) for j in range(k)]
        for j in (j for j, key in enumerate(keys) if key in cache):
            model = copy.deepcopy(base)
            model.load_state_dict(cache.load(keys[j]))
            statistics[j] = tuple(compact(token_statistics(model.eval(), tokenizer, d)) for d in scored)
    missing = [j for j in range(k) if j not in statistics]
    trained = _trained_models(base, tokenizer, [texts[j] for j in missing], [seeds[j] for j in missing], scored, recipe)
    for j, (model, stats) in zip(missing, trained):
        statistics[j] = tuple(compact(s) for s in stats)
        if cache is not None:
            cache.save(keys[j], model.state_dict())
    return ReferenceSet(variant, tuple(statistics[j][0] for j in range(k)), in_mask, tuple(statistics[j][1] for j in range(k)), pool_in)


def model_fingerprint(base: Any, tokenizer: Any) -> dict[str, str]:
    """Hashes of a base model's weights and config and of its tokenizer (computed once per set)."""
    return {
        "base_weights_sha256": tensors_sha256(base.state_dict()),
        "base_config_sha256": hashlib.sha256(base.config.to_json_string(use_diff=False).encode()).hexdigest(),
        "tokenizer_sha256": hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest(),
    }


def reference_key(fingerprint: dict[str, str], documents: Sequence[str], seed: int, recipe: dict[str, Any]) -> ModelKey:
    """The cache key of one reference LM: a hash of the base model and tokenizer
    (:func:`model_fingerprint`), the training documents (in order), the recipe and the seed."""
    inputs = {
        "format_version": 1,
        "kind": "text-reference-lm",
        **fingerprint,
        "documents_sha256": stable_hash(list(documents)),
        "n_documents": len(documents),
        "recipe": {name: recipe[name] for name in sorted(recipe)},
        "seed": int(seed),
    }
    inputs = json.loads(json.dumps(inputs, sort_keys=True))
    return ModelKey(inputs=inputs, digest=stable_hash(inputs))


def _trained_models(
    base: Any, tokenizer: Any, texts: list[list[str]], seeds: list[int], scored: tuple[Sequence[str], ...], recipe: dict
) -> Iterator[tuple[Any, tuple[list[TokenStats], ...]]]:
    """Per model j (trained from ``base`` on ``texts[j]`` with ``seeds[j]``), the model and its
    statistics on each document list of ``scored``, in order; in banks where the bank can and fits."""
    from miaudit.text.lm import token_statistics, train_lm
    from miaudit.text.lm_bank import bank_plan, bank_unsupported, train_lm_bank

    if not texts:
        return
    per_bank, chunk = bank_plan(base, len(texts), batch_size=recipe["batch_size"]) if bank_unsupported(base) is None else (1, 1)
    if per_bank == 1:
        for docs, seed in zip(texts, seeds):
            model = train_lm(copy.deepcopy(base), tokenizer, docs, seed=seed, **recipe)
            yield model, tuple(token_statistics(model, tokenizer, d) for d in scored)
        return
    for lo in range(0, len(texts), per_bank):
        bank = train_lm_bank(base, tokenizer, texts[lo : lo + per_bank], seeds=seeds[lo : lo + per_bank], chunk=chunk, **recipe)
        per_list = [bank.token_statistics(tokenizer, d) for d in scored]
        yield from zip(bank.models(), zip(*per_list))


def compact(stats: Sequence[TokenStats]) -> tuple[TokenStats, ...]:
    """The same statistics as views into one array per field.

    ``token_statistics`` returns every document's arrays as their own small torch-backed
    buffers; kept for 2K references x (N + Z) documents they fragmented the heap (measured:
    RSS +70 MB per reference on 600 documents, 5.9 GB for 8 + 8 references on 3000; compacted,
    flat)."""
    cuts = np.cumsum([s.n_tokens - 1 for s in stats])[:-1]
    fields = [np.split(np.concatenate([getattr(s, f) for s in stats]), cuts) for f in ("logprob", "mean", "var")]
    return tuple(TokenStats(lp, mu, var, s.n_tokens) for lp, mu, var, s in zip(*fields, stats))
