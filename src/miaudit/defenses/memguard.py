"""MemGuard (Jia, Salem, Backes, Zhang and Gong, "MemGuard: Defending against Black-Box
Membership Inference Attacks via Adversarial Examples", ACM CCS 2019): an output-time defense
that turns each released confidence vector into an adversarial example for the attacker's
membership classifier, without changing the predicted label.

The defender first trains its own membership classifier g on *sorted* confidence vectors of the
model: its training records labelled members, its reference records (disjoint, never trained
on) labelled non-members.

Phase I, per query with logits z and label y, searches noise r in logit space minimising

    c1 * relu(max_{i != y} (z + r)_i - (z + r)_y)       (keep the label)
  + c2 * |g(sort(softmax(z + r))) - 0.5|               (make g undecided)
  + c3 * ||softmax(z + r) - softmax(z)||_1             (small distortion)

by normalised gradient steps. A noise is a solution when the label is kept and g's output has
reached or crossed 0.5. Starting from c3 = ``c3``, each time a solution is found c3 grows x10
and the search restarts; the last solution found is kept (none found: no noise).

Phase II releases softmax(z + r) with probability min(budget / d, 1), where d is the L1
distortion of that vector, and the true vector otherwise (budget 0: never any noise). The coin
of a record is a hash of its bytes, so a repeated query gets the same answer.

Threat model: black box with full confidence vectors; the label is never changed, so labels,
correctness and label-only attacks are untouched by design.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.defenses.base import DEFENSES, TrainingTask
from miaudit.defenses.gaussian_noise import record_generators
from miaudit.defenses.output import DefendedOutputs, OutputDefense
from miaudit.seeds import offset_seed

DEFENDER_HIDDEN = (256, 128, 64)


@dataclass
class MemGuardState:
    """The defender's classifier for one model and a memo of phase I per record."""

    classifier: Any
    training: dict[str, Any]
    memo: dict[bytes, tuple[np.ndarray, float]] = field(default_factory=dict)  # record -> (noisy vector, distortion)


def model_logits(model: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict_logits"):
        return np.asarray(model.predict_logits(x), dtype=np.float64)
    return np.log(np.maximum(np.asarray(model.predict_proba(x), dtype=np.float64), 1e-300))


def softmax64(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def train_defender_classifier(
    member_proba: np.ndarray, nonmember_proba: np.ndarray, *, seed: int, epochs: int, lr: float = 1e-3, batch_size: int = 128
) -> tuple[Any, dict[str, Any]]:
    """g: sorted confidence vector -> two logits (non-member, member), on balanced members / non-members."""
    import torch
    import torch.nn.functional as F

    from miaudit.attacks.attack_models import single_threaded
    from miaudit.models import ArchConfig, new_model
    from miaudit.models.seeding import derive_seed

    rng = np.random.default_rng(derive_seed(seed, "memguard/balance"))
    n = min(len(member_proba), len(nonmember_proba))
    mem = member_proba[rng.permutation(len(member_proba))[:n]]
    non = nonmember_proba[rng.permutation(len(nonmember_proba))[:n]]
    feats = -np.sort(-np.concatenate([mem, non]), axis=1)
    labels = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.int64)
    x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    y = torch.from_numpy(labels)
    model = new_model(ArchConfig("mlp", {"hidden": DEFENDER_HIDDEN, "activation": "relu"}), (x.shape[1],), 2, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(derive_seed(seed, "memguard/order"))
    with single_threaded():
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(y), generator=order)
            for s in range(0, len(y), batch_size):
                idx = perm[s : s + batch_size]
                opt.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(x).argmax(dim=1) == y).float().mean())
    for p in model.parameters():
        p.requires_grad_(False)
    return model, {"defender_classifier_train_accuracy": acc, "defender_records": int(2 * n)}


def phase_one(
    g: Any, logits: np.ndarray, *, c1: float, c2: float, c3: float, max_iter: int, rounds: int, step: float
) -> np.ndarray:
    """The noise r (n, C) in logit space; zero where no solution was found."""
    import torch

    from miaudit.attacks.attack_models import single_threaded

    z = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float64))
    n, c = z.shape
    label = z.argmax(dim=1)
    s0 = torch.softmax(z, dim=1)
    def g32(s: Any) -> Any:  # g's P(member) of confidence vectors s
        return torch.softmax(g(torch.sort(s, dim=1, descending=True).values.float()), dim=1)[:, 1].double()

    with single_threaded():
        with torch.no_grad():
            side0 = torch.sign(g32(s0) - 0.5)
        best = torch.zeros_like(z)
        searching = torch.ones(n, dtype=torch.bool)  # still finding solutions, round after round
        weight = c3
        for _ in range(rounds):
            if not searching.any():
                break
            r = torch.zeros_like(z)
            done = ~searching
            found = torch.zeros(n, dtype=torch.bool)
            for _ in range(max_iter):
                active = ~done
                if not active.any():
                    break
                r_a = r[active].clone().requires_grad_(True)
                za, s0a, la = z[active] + r_a, s0[active], label[active]
                sa = torch.softmax(za, dim=1)
                ra_rows = torch.arange(len(la))
                others = za.clone()
                others[ra_rows, la] = -torch.inf
                keep = torch.relu(others.max(dim=1).values - za[ra_rows, la])
                loss = c1 * keep + c2 * (g32(sa) - 0.5).abs() + weight * (sa - s0a).abs().sum(dim=1)
                (grad,) = torch.autograd.grad(loss.sum(), r_a)
                norm = grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
                with torch.no_grad():
                    r[active] = r_a - step * grad / norm
                    zn = z[active] + r[active]
                    ok = (zn.argmax(dim=1) == la) & ((g32(torch.softmax(zn, dim=1)) - 0.5) * side0[active] <= 0)
                idx = torch.nonzero(active).flatten()[ok]
                found[idx] = True
                done[idx] = True
            best[found] = r[found]
            searching = found  # a record keeps searching (with a heavier distortion term) while it finds
            weight *= 10.0
    return best.numpy()


@DEFENSES.register("memguard")
class MemGuard(OutputDefense):
    name = "memguard"
    paper = "Jia et al., CCS 2019 (MemGuard)"
    needs_reference = True
    defaults: dict[str, Any] = {
        "budget": 1.0,  # phase II distortion budget epsilon (L1)
        "c1": 1.0,
        "c2": 10.0,
        "c3": 0.1,
        "max_iter": 300,
        "rounds": 5,
        "step": 0.1,
        "defender_epochs": 50,
        "seed": 0,
    }

    def validate(self) -> None:
        self._number("budget", low=0)
        for key in ("c1", "c2", "c3"):
            self._number(key, low=0)
        self._number("max_iter", low=1, integer=True)
        self._number("rounds", low=1, integer=True)
        self._number("step", low=1e-9)
        self._number("defender_epochs", low=1, integer=True)
        self._number("seed", low=0, integer=True)

    def fit(self, model: Any, task: TrainingTask) -> MemGuardState:
        ref = task.reference(self.name)
        members = softmax64(model_logits(model, task.x[task.private_idx]))
        nonmembers = softmax64(model_logits(model, task.x[ref]))
        g, facts = train_defender_classifier(
            members, nonmembers, seed=offset_seed(task.seed, "memguard/defender", self.params["seed"] + 1), epochs=self.params["defender_epochs"]
        )
        return MemGuardState(g, facts)

    def info(self, state: MemGuardState) -> dict[str, Any]:
        return {"budget": self.params["budget"], **state.training}

    def noisy(self, wrapper: DefendedOutputs, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(true vectors, phase-I vectors, their L1 distortion)`` for records ``x`` (memoised)."""
        state: MemGuardState = wrapper.state
        keys = [row.tobytes() for row in np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)]
        logits = model_logits(wrapper.base, x)
        true = softmax64(logits)
        todo = [i for i, k in enumerate(keys) if k not in state.memo]
        if todo:
            p = self.params
            r = phase_one(state.classifier, logits[todo], c1=p["c1"], c2=p["c2"], c3=p["c3"],
                          max_iter=p["max_iter"], rounds=p["rounds"], step=p["step"])  # fmt: skip
            noisy = softmax64(logits[todo] + r)
            # Numerical safety: a vector whose argmax moved is not released (MemGuard's constraint).
            moved = noisy.argmax(axis=1) != true[todo].argmax(axis=1)
            noisy[moved] = true[todo][moved]
            for j, i in enumerate(todo):
                state.memo[keys[i]] = (noisy[j], float(np.abs(noisy[j] - true[i]).sum()))
        vecs = np.stack([state.memo[k][0] for k in keys]) if keys else true
        dist = np.array([state.memo[k][1] for k in keys])
        return true, vecs, dist

    def release(self, wrapper: DefendedOutputs, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        if not len(x):
            return proba
        true, vecs, dist = self.noisy(wrapper, x)
        budget = self.params["budget"]
        p_noise = np.where(dist > 0, np.minimum(budget / np.maximum(dist, 1e-300), 1.0), 1.0)
        coins = np.array([g.random() for g in record_generators(x, self.params["seed"], b"memguard")])
        return np.where((coins < p_noise)[:, None], vecs, true)
