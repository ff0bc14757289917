"""MemGuard (Jia, Salem, Backes, Zhang and Gong, "MemGuard: Defending against Black-Box
Membership Inference Attacks via Adversarial Examples", ACM CCS 2019), as the authors' code
(github.com/jjy1994/MemGuard: ``train_defense_model_defensemodel.py``, ``defense_framework.py``,
``evaluate_nn_attack.py``) builds it: an output-time defense that turns each released confidence
vector into an adversarial example for the attacker's membership classifier, without changing
the predicted label.

**Defender's classifier g** (:func:`train_defender_classifier`): a 256-128-64 ReLU MLP with one
output logit h(s) (P(member) = sigmoid(h)), Glorot-uniform kernels, on the *ascending-sorted*
confidence vectors of the model; the model's training records are members, the defender's
reference records (never trained on) non-members. Binary cross-entropy, plain SGD, lr 0.001,
400 epochs of shuffled batches of 64 (the authors' config for Location30).

**Phase I** (:func:`phase_one`), per query with logits z sorted ascending once (label y = the
last position; g sees softmax(z + r) in that fixed order, as the authors' ``model_defense_optimize``
does), searches noise r minimising

    c1 * |h(softmax(z + r))|                                 (make g undecided: its logit to 0)
  + c2 * relu(max_{i != y} (z + r)_i - (z + r)_y)          (keep the label)
  + c3 * ||softmax(z + r) - softmax(z)||_1                  (small distortion)

with c1 = 1, c2 = 10, by steps r <- r - step * grad / ||grad|| (step 0.1), from r = 0, for at
most ``max_iter - 1`` steps, stopping at the first step where the label is kept and h has reached
or crossed 0 (the sign of h(z + r) * h(z) <= 0). If it succeeds, the noise is kept, c3 is
multiplied by 10 and the search restarts from r = 0, until c3 exceeds ``c3_max`` (1e5) or a
search fails; the last successful noise is released (none: no noise). A record on which g's
output is already within 1e-5 of 0.5 gets no noise.

**Phase II** (:meth:`MemGuard.release`): with d the L1 distortion of the phase-I vector, the
noisy vector is released with probability p = min(budget / d, 1), except p = 0 when the noise
did not move g toward 0.5 (|g(s) - 0.5| <= |g(s + noise) - 0.5|, g on the re-sorted vectors, as
in the authors' ``evaluate_nn_attack.py``); otherwise the true vector. Budget 0: never noise.

Differences from the authors' code, and why:

- The authors compute the attack's *expected* accuracy over phase II's coin; here each record's
  coin is drawn (a hash of its bytes and ``seed``), because the defense releases real answers and a
  repeated query must get the same one. The same coin for every budget, so a budget sweep is
  coupled (more budget, never fewer noisy records).
- Float64 optimisation (the authors': TensorFlow float32); records are optimised in one batch,
  each record stopping at its own first success, which is the authors' per-record loop.
- g's members and non-members are subsampled to equal numbers when they differ (the authors'
  are 1000 and 1000).
- ``rounds`` caps the c3 rounds (default 7: it never binds below c3_max from c3 = 0.1).

Phase I does not depend on the budget: the fitted classifier and the phase-I vectors are kept
per model (``_FITTED``) so that a budget sweep on one model runs phase I once.

Threat model: black box with full confidence vectors; the label is never changed, so labels,
correctness and label-only attacks are untouched by design.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.defenses.base import DEFENSES, TrainingTask
from miaudit.defenses.gaussian_noise import record_generators
from miaudit.defenses.output import DefendedOutputs, OutputDefense
from miaudit.seeds import offset_seed

DEFENDER_HIDDEN = (256, 128, 64)
_FITTED_MAX = 4  # fitted states kept per process (each: one g and its phase-I memo)


@dataclass
class PhaseOne:
    """Phase I's result for one record: the noisy vector, its L1 distortion, and whether the noise
    moved g toward 0.5 (phase II releases it only then)."""

    vector: np.ndarray
    distortion: float
    improves: bool


@dataclass
class MemGuardState:
    """The defender's classifier for one model and a memo of phase I per record."""

    classifier: Any
    training: dict[str, Any]
    memo: dict[bytes, PhaseOne] = field(default_factory=dict)


_FITTED: OrderedDict[str, MemGuardState] = OrderedDict()


def model_logits(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's logits on ``x`` (log-probabilities for a model without logits)."""
    if hasattr(model, "predict_logits"):
        return np.asarray(model.predict_logits(x), dtype=np.float64)
    return np.log(np.maximum(np.asarray(model.predict_proba(x), dtype=np.float64), 1e-300))


def softmax64(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def defender_logit(g: Any, proba: np.ndarray) -> np.ndarray:
    """g's logit h on confidence vectors ``proba`` (sorted here, ascending, as g was trained)."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(np.sort(proba, axis=1), dtype=np.float64))
        return g(x.to(_dtype(g))).flatten().double().numpy()


def member_probability(g: Any, proba: np.ndarray) -> np.ndarray:
    """g's P(member) = sigmoid(h) on confidence vectors ``proba`` (Jia et al. 2019, the defender's classifier)."""
    return 1.0 / (1.0 + np.exp(-defender_logit(g, proba)))


def _dtype(g: Any) -> Any:
    return next(g.parameters()).dtype


def defender_network(n_classes: int, seed: int) -> Any:
    """g's architecture (the authors' ``model_defense``): n_classes-256-128-64-1, ReLU, Glorot-uniform kernels, zero biases."""
    from torch import nn

    from miaudit.models.architectures import init_module
    from miaudit.models.seeding import init_generator

    layers: list[Any] = []
    width = n_classes
    for hidden in DEFENDER_HIDDEN:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return init_module(nn.Sequential(*layers, nn.Linear(width, 1)), init_generator(seed), "glorot_uniform")


def train_defender_classifier(
    member_proba: np.ndarray,
    nonmember_proba: np.ndarray,
    *,
    seed: int,
    epochs: int = 400,
    lr: float = 1e-3,
    batch_size: int = 64,
) -> tuple[Any, dict[str, Any]]:
    """g of Jia et al. 2019: ascending-sorted confidence vector -> one membership logit.

    Trained as the authors' ``train_defense_model_defensemodel.py``: binary cross-entropy, plain
    SGD at ``lr``, ``epochs`` passes of shuffled batches of ``batch_size``. Returned in float64
    with frozen weights, with its training accuracy.
    """
    import torch
    import torch.nn.functional as F

    from miaudit.attacks.attack_models import single_threaded
    from miaudit.models.seeding import derive_seed

    rng = np.random.default_rng(derive_seed(seed, "memguard/balance"))
    n = min(len(member_proba), len(nonmember_proba))
    mem = member_proba[rng.permutation(len(member_proba))[:n]]
    non = nonmember_proba[rng.permutation(len(nonmember_proba))[:n]]
    feats = np.sort(np.concatenate([mem, non]), axis=1)
    x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    y = torch.from_numpy(np.concatenate([np.ones(n), np.zeros(n)]).astype(np.float32))
    model = defender_network(x.shape[1], seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(derive_seed(seed, "memguard/order"))
    with single_threaded():
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(y), generator=order)
            for s in range(0, len(y), batch_size):
                idx = perm[s : s + batch_size]
                opt.zero_grad()
                F.binary_cross_entropy_with_logits(model(x[idx]).flatten(), y[idx]).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            acc = float(((model(x).flatten() > 0).float() == y).float().mean())
    model = model.double()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, {"defender_classifier_train_accuracy": acc, "defender_records": int(2 * n)}


def phase_one(
    g: Any,
    logits: np.ndarray,
    *,
    c1: float = 1.0,
    c2: float = 10.0,
    c3: float = 0.1,
    c3_max: float = 1e5,
    max_iter: int = 300,
    rounds: int = 7,
    step: float = 0.1,
) -> np.ndarray:
    """Phase I of Jia et al. 2019 (the authors' ``defense_framework.py``): the noise r (n, C) in
    logit space, in the records' own class order; zero where no solution was found."""
    import torch

    from miaudit.attacks.attack_models import single_threaded

    order = np.argsort(logits, axis=1, kind="stable")  # ascending, fixed for the whole search
    z = torch.from_numpy(np.ascontiguousarray(np.take_along_axis(logits, order, axis=1), dtype=np.float64))
    n, c = z.shape
    s0 = torch.softmax(z, dim=1)
    rows = torch.arange(n)
    label = torch.full((n,), c - 1, dtype=torch.long)

    def h(zz: Any) -> Any:  # g's logit on softmax(zz), no re-sorting (the authors' model_defense_optimize)
        return g(torch.softmax(zz, dim=1)).flatten()

    with single_threaded():
        with torch.no_grad():
            h0 = h(z)
        best = torch.zeros_like(z)
        # Already within 1e-5 of P = 0.5: released as is (the authors' numerical shortcut).
        searching = (torch.sigmoid(h0) - 0.5).abs() > 1e-5
        weight, k = c3, 0
        while searching.any() and k < rounds:
            r = torch.zeros_like(z)
            found = torch.zeros(n, dtype=torch.bool)
            for _ in range(max_iter - 1):
                active = searching & ~found
                if not active.any():
                    break
                r_a = r[active].clone().requires_grad_(True)
                za, la, ra = z[active] + r_a, label[active], rows[: int(active.sum())]
                others = za.clone()
                others[ra, la] = -torch.inf
                keep = torch.relu(others.max(dim=1).values - za[ra, la])
                sa = torch.softmax(za, dim=1)
                loss = c1 * h(za).abs() + c2 * keep + weight * (sa - s0[active]).abs().sum(dim=1)
                (grad,) = torch.autograd.grad(loss.sum(), r_a)
                with torch.no_grad():
                    r[active] = r_a - step * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-300)
                    zn = z[active] + r[active]
                    ok = (zn.argmax(dim=1) == la) & (h(zn) * h0[active] <= 0)
                found[torch.nonzero(active).flatten()[ok]] = True
            best[found] = r[found]
            searching = found  # a record searches again, with a heavier distortion term, while it succeeds
            weight, k = weight * 10.0, k + 1
            if weight > c3_max:
                break
    back = np.argsort(order, axis=1)
    return np.take_along_axis(best.numpy(), back, axis=1)


def release_probability(budget: float, distortion: np.ndarray, improves: np.ndarray) -> np.ndarray:
    """Phase II of Jia et al. 2019: min(budget / d, 1) where the noise moved g toward 0.5, else 0."""
    d = np.asarray(distortion, dtype=np.float64)
    p = np.minimum(budget / np.where(d > 0, d, 1.0), 1.0)
    return np.where(np.asarray(improves, dtype=bool) & (d > 0), p, 0.0)


@DEFENSES.register("memguard")
class MemGuard(OutputDefense):
    """MemGuard (Jia et al., CCS 2019): phase I adversarial noise against the defender's own
    membership classifier, phase II released with a probability set by the L1 budget."""

    name = "memguard"
    paper = "Jia et al., CCS 2019 (MemGuard)"
    needs_reference = True
    defaults: dict[str, Any] = {
        "budget": 1.0,  # phase II distortion budget epsilon (L1)
        "c1": 1.0,  # on |g's logit|
        "c2": 10.0,  # on keeping the label
        "c3": 0.1,  # on the L1 distortion, x10 per successful round
        "c3_max": 1e5,
        "max_iter": 300,
        "rounds": 7,
        "step": 0.1,
        "defender_epochs": 400,
        "defender_lr": 1e-3,
        "defender_batch_size": 64,
        "seed": 0,
    }

    def validate(self) -> None:
        self._number("budget", low=0)
        for key in ("c1", "c2", "c3", "c3_max"):
            self._number(key, low=0)
        self._number("max_iter", low=2, integer=True)
        self._number("rounds", low=1, integer=True)
        self._number("step", low=1e-9)
        self._number("defender_epochs", low=1, integer=True)
        self._number("defender_lr", low=1e-12)
        self._number("defender_batch_size", low=1, integer=True)
        self._number("seed", low=0, integer=True)

    def _fit_key(self, members: np.ndarray, nonmembers: np.ndarray, seed: int) -> str:
        """What the fitted state depends on: the model's outputs, the seed, every parameter but the budget."""
        digest = hashlib.sha256(np.ascontiguousarray(members).tobytes() + np.ascontiguousarray(nonmembers).tobytes())
        params = sorted((k, repr(v)) for k, v in self.params.items() if k != "budget")
        digest.update(repr((seed, params)).encode())
        return digest.hexdigest()

    def fit(self, model: Any, task: TrainingTask) -> MemGuardState:
        ref = task.reference(self.name)
        members = softmax64(model_logits(model, task.x[task.private_idx]))
        nonmembers = softmax64(model_logits(model, task.x[ref]))
        seed = offset_seed(task.seed, "memguard/defender", self.params["seed"] + 1)
        key = self._fit_key(members, nonmembers, seed)
        if key in _FITTED:
            _FITTED.move_to_end(key)
            return _FITTED[key]
        p = self.params
        g, facts = train_defender_classifier(
            members, nonmembers, seed=seed, epochs=p["defender_epochs"], lr=p["defender_lr"], batch_size=p["defender_batch_size"]
        )
        state = _FITTED[key] = MemGuardState(g, facts)
        while len(_FITTED) > _FITTED_MAX:
            _FITTED.popitem(last=False)
        return state

    def info(self, state: MemGuardState) -> dict[str, Any]:
        return {"budget": self.params["budget"], **state.training}

    def noisy(self, wrapper: DefendedOutputs, x: np.ndarray) -> tuple[np.ndarray, list[PhaseOne]]:
        """``(true vectors, phase I per record)`` for records ``x`` (memoised per record)."""
        state: MemGuardState = wrapper.state
        keys = [row.tobytes() for row in np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)]
        logits = model_logits(wrapper.base, x)
        true = softmax64(logits)
        todo = [i for i, k in enumerate(keys) if k not in state.memo]
        if todo:
            p = self.params
            r = phase_one(state.classifier, logits[todo], c1=p["c1"], c2=p["c2"], c3=p["c3"], c3_max=p["c3_max"],
                          max_iter=p["max_iter"], rounds=p["rounds"], step=p["step"])  # fmt: skip
            noisy = softmax64(logits[todo] + r)
            # Numerical safety: a vector whose argmax moved is not released (MemGuard's constraint).
            moved = noisy.argmax(axis=1) != true[todo].argmax(axis=1)
            noisy[moved] = true[todo][moved]
            improves = np.abs(member_probability(state.classifier, true[todo]) - 0.5) > np.abs(
                member_probability(state.classifier, noisy) - 0.5
            )
            for j, i in enumerate(todo):
                state.memo[keys[i]] = PhaseOne(noisy[j], float(np.abs(noisy[j] - true[i]).sum()), bool(improves[j]))
        return true, [state.memo[k] for k in keys]

    def release(self, wrapper: DefendedOutputs, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        if not len(x):
            return proba
        true, found = self.noisy(wrapper, x)
        p_noise = release_probability(
            self.params["budget"], np.array([f.distortion for f in found]), np.array([f.improves for f in found])
        )
        coins = np.array([g.random() for g in record_generators(x, self.params["seed"], b"memguard")])
        vecs = np.stack([f.vector for f in found])
        return np.where((coins < p_noise)[:, None], vecs, true)
