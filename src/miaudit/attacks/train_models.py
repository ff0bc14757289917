"""The one entry through which every model the attacker trains is trained: shadow models
(:mod:`miaudit.attacks.shadow_models`), the online attacks' reference models
(:mod:`miaudit.attacks.reference_models`) and the many-target protocol's models
(:mod:`miaudit.experiments.many_targets`).

:func:`train_models` takes the model as the attacker knows it (a :class:`ModelSpec`: name,
options, recipe and, for Song and Mittal's adaptive attacker, the target's defense) and one
training subset and seed per model:

- undefended (``spec.defense`` is None): every model at once in the cached ModelBank
  (:func:`train_many`; scikit-learn estimators one after another);
- defended: each model is built by ``spec.defense.build(TrainingTask)``, the way the defender
  builds the target, so training-time defenses (DP-SGD, weight decay, ...) train the references
  and output-time defenses (MemGuard, rounding, top-k, ...) wrap them. A defense that needs
  reference data gets the model's reference set from ``references`` (one per model, disjoint from
  its subset: the shadow and reference plans of :mod:`miaudit.attacks.defended_plan` draw it from
  the attacker's pool outside the subset, at the defender's reference size); without
  ``references`` (a caller that gives no plan) the subset is split again, one half its private
  set, the other its reference set. Reference records are neither member nor non-member for the
  attack, just as the defender's reference set is disjoint from every evaluated record. Defended models are memoised on the defense object per (data, subset,
  seed, model), so the attacks of one audit share them.

The module lives in ``attacks/`` because what it trains is the attacker's: it reads a
:class:`ModelSpec` (attacker knowledge) and depends on ``models/`` and ``defenses/base`` only;
nothing in ``models/`` or ``defenses/`` imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.attacks.knowledge import ModelSpec
from miaudit.defenses.base import Defense, TrainingTask
from miaudit.io_utils import sha256_arrays, stable_hash


@dataclass(frozen=True)
class ShadowModel:
    """A model the attacker trained (shadow or reference) and which records of its data set it
    trained on as a member (``in_idx``) or did not see at all (``out_idx``). With a defense that
    needs reference data, the records of its reference set (``reference_idx``) are in neither."""

    model: Any  # a miaudit.models Classifier (predict_proba / predict_logits), or a defended one
    in_idx: np.ndarray
    out_idx: np.ndarray
    reference_idx: np.ndarray | None = None


def train_many(
    model_name: str,
    x: np.ndarray,
    y: np.ndarray,
    subsets: list[np.ndarray],
    seeds: list[int],
    *,
    num_classes: int,
    recipe: Any,
    options: dict[str, Any] | None = None,
    cache: Any = None,
    data_fingerprint: str | None = None,
    progress: bool = False,
    executor: Any = None,
) -> list[Any]:
    """Undefended: one model per (subset, seed): torch architectures all at once in the
    ModelBank, scikit-learn estimators one after another (they are cheap). ``executor`` (a
    :class:`miaudit.models.executors.Executor`, default this process) trains the bank's blocks."""
    from miaudit.models import (  # torch: import when needed
        ARCHITECTURES,
        ArchConfig,
        fit_classifier,
        train_bank,
    )

    if model_name in ARCHITECTURES:
        bank = train_bank(
            ArchConfig(model_name, options or {}), recipe, x, y, subsets, seeds,
            num_classes=num_classes, cache=cache, data_fingerprint=data_fingerprint, progress=progress,
            executor=executor,
        )  # fmt: skip
        return list(bank)
    return [
        fit_classifier(
            model_name, x, y, num_classes=num_classes, seed=seed, recipe=recipe, options=options, train_indices=subset
        )  # recipe: estimators use its ``standardize``
        for subset, seed in zip(subsets, seeds)
    ]


def train_models(
    spec: ModelSpec,
    x: np.ndarray,
    y: np.ndarray,
    subsets: list[np.ndarray],
    seeds: list[int],
    *,
    num_classes: int,
    cache: Any = None,
    data_fingerprint: str | None = None,
    executor: Any = None,
    progress: bool = False,
    reference_from: np.ndarray | None = None,
    references: list[np.ndarray] | None = None,
) -> list[ShadowModel]:
    """One :class:`ShadowModel` per ``(subsets[k], seeds[k])`` on ``(x, y)``, trained as ``spec``
    says: with ``spec.defense`` when it is set (see the module docstring), else undefended in the
    ModelBank. ``in_idx`` / ``out_idx`` index ``x``. ``executor`` trains the bank's blocks
    (defended models train in this process, one per ``Defense.build``).

    ``reference_from`` (indices of ``x``, default all) restricts where a defense that needs
    reference data draws a model's reference set from: half of the model's subset within it.
    The online references pass the attacker's pool, so that a scored record in a model's subset
    is always a member of it, never reference data. ``references`` (one per model, disjoint from
    its subset) gives each defended model its reference set instead; ``reference_from`` is then
    unused."""
    if len(subsets) != len(seeds):
        raise ValueError(f"{len(subsets)} subsets but {len(seeds)} seeds")
    if references is not None and len(references) != len(subsets):
        raise ValueError(f"{len(subsets)} subsets but {len(references)} reference sets")
    all_idx = np.arange(len(y))
    if spec.defense is not None:
        task = TrainingTask(
            x=x, y=y, private_idx=all_idx, reference_idx=None, num_classes=num_classes, seed=0, model=spec.name,
            options=dict(spec.options), recipe=spec.recipe, cache=cache, data_fingerprint=data_fingerprint,
            progress=progress,
        )  # fmt: skip
        memo_data = data_fingerprint if data_fingerprint is not None else sha256_arrays(x, y)
        eligible = None if reference_from is None else np.asarray(reference_from)
        refs: list[np.ndarray | None] = [None] * len(subsets) if references is None else [np.asarray(r) for r in references]
        return [
            _defended(spec.defense, task, np.asarray(s), int(seed), memo_data, eligible, r)
            for s, seed, r in zip(subsets, seeds, refs)
        ]
    models = train_many(
        spec.name, x, y, subsets, seeds, num_classes=num_classes, recipe=spec.recipe, options=spec.options,
        cache=cache, data_fingerprint=data_fingerprint, progress=progress, executor=executor,
    )  # fmt: skip
    return [ShadowModel(m, np.asarray(s), np.setdiff1d(all_idx, s)) for m, s in zip(models, subsets)]


def _defended(
    defense: Defense, like: TrainingTask, subset: np.ndarray, seed: int, memo_data: str, eligible: np.ndarray | None,
    given: np.ndarray | None = None,
) -> ShadowModel:
    """One model built by ``defense`` on ``subset`` of ``like``'s data, memoised on the defense
    object. Its reference set, when the defense needs one: ``given`` (disjoint from ``subset``),
    else half of the subset's ``eligible`` part."""
    from miaudit.models.seeding import derive_seed  # torch: import when needed

    memo: dict[str, ShadowModel] = defense.__dict__.setdefault("_shadow_memo", {})
    key = stable_hash({
        "data": memo_data, "subset": subset, "seed": seed, "model": like.model, "classes": like.num_classes,
        "options": repr(sorted(like.options.items())), "recipe": repr(like.recipe), "eligible": eligible,
        "reference": given,
    })  # fmt: skip
    if key not in memo:
        private, reference = subset, None
        if defense.needs_reference and given is not None:
            if np.intersect1d(given, subset).size:
                raise ValueError("a defended model's reference set overlaps its training subset")
            reference = np.sort(given)
        elif defense.needs_reference:
            rng = np.random.default_rng(derive_seed(seed, "adaptive-shadow/reference"))
            perm = rng.permutation(subset if eligible is None else np.intersect1d(subset, eligible))
            reference = np.sort(perm[len(perm) // 2 :])
            private = np.setdiff1d(subset, reference)
        task = dataclasses.replace(like, private_idx=private, reference_idx=reference, seed=seed)
        unseen = np.setdiff1d(np.arange(len(like.y)), subset if reference is None else np.union1d(subset, reference))
        memo[key] = ShadowModel(defense.build(task).model, private, unseen, reference)
    return memo[key]
