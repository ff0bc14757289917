"""DP-SGD's learning-rate search on the defender's own records.

The defender splits its private records (``task.private_idx``, and nothing else) into a fit part
and a held-out part, trains DP-SGD at each candidate rate on the fit part, keeps the rate with
the best held-out accuracy, and :class:`~miaudit.defenses.dpsgd.DPSGD` then trains the released
model on all its records at that rate. No evaluated record and no record of the attacker's pool
is read: the search cannot see them.

Privacy accounting, stated plainly: the released model's epsilon (the defense's ``epsilon``)
covers the final training only. Tuning on private data costs privacy too (Papernot & Steinke,
"Hyperparameter Tuning with Renyi Differential Privacy", ICLR 2022): the fit records took part in
every candidate run, and the held-out accuracies behind the choice are not privatised at all.
``epsilon_all_runs`` composes every run (candidates plus final) for a fit record with the
defense's accountant (PRV by default); it
does not cover the non-private selection, so no full guarantee for the tuned model is claimed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from miaudit.defenses.base import TrainingTask
from miaudit.errors import ConfigError

PRIVACY_NOTE = (
    "epsilon covers the final training only; the lr search trained on the defender's records too "
    "(Papernot & Steinke, ICLR 2022): epsilon_all_runs composes every run for a fit record, and the "
    "held-out selection is not privatised"
)


def parse_lr_grid(value: Any) -> tuple[float, ...]:
    """Candidate rates from ``"0.1/0.2/0.5"`` (a spec value: commas separate parameters) or a sequence."""
    items = value.split("/") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    try:
        grid = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"defense 'dpsgd': lr_grid must be rates separated by '/', e.g. 0.1/0.5/1, got {value!r}") from None
    if not grid or not all(np.isfinite(v) and v > 0 for v in grid):
        raise ConfigError(f"defense 'dpsgd': lr_grid must hold positive rates, got {value!r}")
    return grid


def split_private(task: TrainingTask, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fit, held-out) indices: a seeded split of ``task.private_idx`` only, ``fraction`` held out."""
    from miaudit.models.seeding import derive_seed

    private = np.asarray(task.private_idx)
    order = np.random.default_rng(derive_seed(task.seed, "dpsgd/tune-split")).permutation(len(private))
    held = max(1, int(round(fraction * len(private))))
    if held >= len(private):
        raise ConfigError(f"defense 'dpsgd': {len(private)} private records are too few for a held-out part")
    return np.sort(private[order[held:]]), np.sort(private[order[:held]])


TrainFn = Callable[..., tuple[Any, dict[str, Any]]]
"""``train(task, params, indices) -> (module, info)``: :func:`miaudit.defenses.dpsgd.train_dp`."""


def select_lr(task: TrainingTask, params: dict[str, Any], train: TrainFn) -> tuple[float, dict[str, Any]]:
    """The candidate rate (``params["lr_grid"]``) with the best held-out accuracy when DP-SGD
    (``train``) fits the defender's fit part, and a report of the search (every candidate's
    held-out accuracy and epsilon, the note on accounting; Papernot & Steinke, ICLR 2022, on
    what the search costs). Ties go to the smaller rate."""
    from miaudit.defenses.training import torch_classifier

    fit, held = split_private(task, params["tune_fraction"])
    candidates: list[dict[str, Any]] = []
    for lr in sorted(parse_lr_grid(params["lr_grid"])):
        module, info = train(task, {**params, "lr": lr}, indices=fit)
        model = torch_classifier(module, task)
        pred = np.asarray(model.predict_proba(task.x[held])).argmax(axis=1)
        candidates.append({
            "lr": lr, "held_out_accuracy": float((pred == task.y[held]).mean()),
            "epsilon": info["epsilon"], "accountant_history": info["accountant_history"],
        })  # fmt: skip
    best = max(candidates, key=lambda c: (c["held_out_accuracy"], -c["lr"]))
    report = {
        "chosen_lr": best["lr"],
        "fit_records": int(len(fit)),
        "held_out_records": int(len(held)),
        "candidates": candidates,
        "privacy_note": PRIVACY_NOTE,
    }
    return best["lr"], report


def finish_report(report: dict[str, Any], final_info: dict[str, Any], delta: float) -> dict[str, Any]:
    """``report`` with ``epsilon_all_runs``: every candidate run and the final one composed."""
    runs = [step for c in report["candidates"] for step in c["accountant_history"]] + final_info["accountant_history"]
    return {**report, "epsilon_all_runs": composed_epsilon(runs, delta, final_info["accountant"])}


def composed_epsilon(runs: list[list[float]], delta: float, accountant_name: str = "rdp") -> float:
    """Epsilon at ``delta`` of running every one of ``runs`` under the Opacus accountant
    ``accountant_name`` (``rdp``: RDP composition, Mironov 2017; ``prv``: Gopi et al. 2021; ``gdp``),
    each run ``(noise multiplier, sample rate, steps)`` as an Opacus accountant records it."""
    from opacus.accountants import create_accountant

    accountant = create_accountant(accountant_name)
    accountant.history = [(float(noise), float(rate), int(steps)) for noise, rate, steps in runs]
    return float(accountant.get_epsilon(delta))
