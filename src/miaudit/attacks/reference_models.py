"""Reference models for the online attacks (LiRA, RMIA): trained with and without each scored record.

Online LiRA and RMIA (Carlini et al., S&P 2022; Zarifzadeh et al., ICML 2024) train reference
models on random halves of a set that contains the records being scored, so that each record is
IN for about half of them and OUT for the rest; target and references train on as many records.
The attacker knows the candidate records (it queries them) but not which ones the target trained
on: the halves are drawn at random, never from membership truth. Here the set is the attacker's
pool followed by the candidates; when the attacker knows the target's training-set size (its
recipe, ``ModelSpec.train_size``) each pair of references splits the candidates into
complementary halves and fills up to that size from the pool (:func:`target_size_plan`), else the
whole set is split into paired complementary halves (:func:`half_splits`). Either way every
candidate is IN for exactly one model of each pair. All references train at once in the
ModelBank and are cached under the content of that set, so a second audit of the same records
trains nothing.
They train through :func:`miaudit.attacks.train_models.train_models`, like the shadow models:
an adaptive attacker's references are built with the target's defense (``ModelSpec.defense``),
and a defense that needs reference data gets a reference set of the defender's size from the
pool outside the model's subset (never a candidate; :mod:`miaudit.attacks.defended_plan`),
whose records are neither IN nor OUT for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from miaudit.attacks.defended_plan import DefendedPlan, defended_plan
from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
from miaudit.attacks.shadow_models import adaptive_plan, half_splits
from miaudit.attacks.train_models import train_models
from miaudit.errors import ConfigError
from miaudit.io_utils import sha256_arrays, stable_hash
from miaudit.seeds import stream_rng, offset_seed


@dataclass(frozen=True)
class OnlineReferences:
    """Reference models and, per model, which candidates (``in_candidates``, shape (R, N)) and
    which pool records (``in_pool``, shape (R, P)) it trained on as members, and which it never
    saw (``out_candidates``, ``out_pool``). Undefended, or with a defense that needs no reference
    data, OUT is the complement of IN."""

    models: list[Any]
    in_candidates: np.ndarray
    in_pool: np.ndarray
    out_candidates: np.ndarray
    out_pool: np.ndarray


def reference_train_size(target_train_size: int, n_candidates: int) -> int:
    """Records each online reference trains on: the target's training-set size, or half the
    candidates when that is more (so every candidate is IN for one model of each pair)."""
    return max(int(target_train_size), -(-int(n_candidates) // 2))


def target_size_plan(spec: ModelSpec, n_records: int, n_models: int, *, seed: int, n_pool: int) -> DefendedPlan | None:
    """The references' training sets at the target's training-set size, or None (size unknown).

    Carlini et al. train the target and every reference on same-size random halves of one set;
    references on half of pool + candidates would train on about twice as many records as the
    target here (the default split gives the attacker a pool twice the target's training set and
    scores twice as many records). So each pair of references splits the candidates (records
    ``n_pool..n_records``) into complementary halves and fills each model's training set up to the
    target's size with pool records (:func:`~miaudit.attacks.defended_plan.defended_plan`, with
    the target's defense and reference data when the attacker adapts). When half the candidates
    outnumber the target's training set (more records scored than it trained on), each reference
    trains on that half instead, so that every candidate stays IN for one model of each pair, as
    the online attacks need. Too few records for two such sets: both are scaled down, with a
    note."""
    if spec.train_size is None:
        return None
    pool, candidates = np.arange(n_pool), np.arange(n_pool, n_records)
    size = reference_train_size(int(spec.train_size), len(candidates))
    if spec.defense is not None:
        return adaptive_plan(replace(spec, train_size=size), n_records, n_models, seed=seed, reference_from=pool,
                             priority=candidates)  # fmt: skip
    return defended_plan(n_records, n_models, train_size=size, reference_size=0, seed=seed, priority=candidates)


def train_online_references(
    knowledge: AttackerKnowledge, x: np.ndarray, y: np.ndarray, n_models: int
) -> OnlineReferences:
    """Train ``n_models`` (>= 2) references on paired halves of pool + candidates ``(x, y)``."""
    if n_models < 2:
        raise ConfigError(f"online attacks need at least 2 reference models (one IN, one OUT per record), got {n_models}")
    if knowledge.pool_x is None or knowledge.pool_y is None:
        raise ConfigError("reference models need same-distribution data (the attacker's pool); the threat model gives none")
    if knowledge.model is None or knowledge.model.recipe is None:
        raise ConfigError("reference models need the target's architecture and training recipe (gray box)")
    x = np.asarray(x, dtype=knowledge.pool_x.dtype)
    y = np.asarray(y, dtype=knowledge.pool_y.dtype)
    n_pool = len(knowledge.pool_y)
    data_x = np.concatenate((knowledge.pool_x, x))
    data_y = np.concatenate((knowledge.pool_y, y))
    seed = offset_seed(knowledge.seed, "references")
    plan = target_size_plan(knowledge.model, len(data_y), n_models, seed=seed, n_pool=n_pool)
    subsets = half_splits(len(data_y), n_models, seed=seed) if plan is None else plan.subsets
    seeds = [int(s) for s in stream_rng(seed, "references/seeds").integers(0, 2**31 - 1, n_models)]
    fingerprint = stable_hash({"pool": knowledge.pool_fingerprint, "candidates": sha256_arrays(x, y)})
    trained = train_models(
        knowledge.model, data_x, data_y, subsets, seeds, num_classes=knowledge.num_classes, cache=knowledge.cache,
        data_fingerprint=fingerprint, executor=knowledge.executor, reference_from=np.arange(n_pool),
        references=None if plan is None else plan.references,
    )  # fmt: skip
    member = np.zeros((n_models, len(data_y)), dtype=bool)
    out = np.zeros((n_models, len(data_y)), dtype=bool)
    for row, model in enumerate(trained):
        member[row, model.in_idx] = True
        out[row, model.out_idx] = True
    models = [m.model for m in trained]
    return OnlineReferences(models, member[:, n_pool:], member[:, :n_pool], out[:, n_pool:], out[:, :n_pool])
