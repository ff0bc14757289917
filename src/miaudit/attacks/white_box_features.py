"""White-box features of records, extracted in batches through :class:`TargetAccess`.

The features of Nasr, Shokri and Houmansadr ("Comprehensive Privacy Analysis of Deep Learning:
Passive and Active White-box Inference Attacks against Centralized and Federated Learning", IEEE
S&P 2019, section III): the loss, the one-hot label, the output (probability) vector, the
activations of chosen layers and the per-record gradient of the loss with respect to the
parameters of chosen layers.

:func:`stream_features` yields them one batch at a time, so that a caller that consumes each batch
(scoring) holds at most ``batch_size`` records' gradients at once, whatever the number of records.
Per-record gradients come from ``TargetAccess.gradients`` (``torch.func.vmap(grad(...))``), for the
chosen layers only. Queries: three per record (probabilities, activations, gradients); the loss is
``-log p_y`` of the released probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError
from miaudit.targets.access import TargetAccess

LOG_FLOOR = 1e-30


@dataclass(frozen=True)
class FeatureLayout:
    """Which layers feed the attack: gradient layers by name, activation layers by forward index."""

    gradient_layers: tuple[str, ...]
    activation_layers: tuple[int, ...]
    num_classes: int

    @classmethod
    def last_layers(cls, access: TargetAccess, num_classes: int, *, n_gradient: int, n_activation: int) -> "FeatureLayout":
        """The last ``n_gradient`` parametrised layers' gradients and the last ``n_activation`` hidden
        layers' activations (the output layer's activations are the logits, already in the output
        feature). Nasr et al. find the last layers the most revealing."""
        names = list(access.parameter_layers())
        if not 1 <= n_gradient <= len(names):
            raise ConfigError(f"gradient layers must be between 1 and {len(names)}, got {n_gradient}")
        n_hidden = len(names) - 1  # one activation per parametrised layer, the last is the logits
        if not 0 <= n_activation <= n_hidden:
            raise ConfigError(f"activation layers must be between 0 and {n_hidden}, got {n_activation}")
        return cls(tuple(names[-n_gradient:]), tuple(range(n_hidden - n_activation, n_hidden)), num_classes)


def stream_features(
    access: TargetAccess, x: np.ndarray, y: np.ndarray, layout: FeatureLayout, *, batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """``{feature name: (batch, dim) float32}`` per batch of ``batch_size`` records, in order."""
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        proba = access.predict_proba(xb)
        feats = {
            "loss": -np.log(np.maximum(proba[np.arange(len(yb)), yb], LOG_FLOOR))[:, None],
            "label": np.eye(layout.num_classes, dtype=np.float32)[yb],
            "output": proba,
        }
        if layout.activation_layers:
            acts = access.activations(xb)
            for i in layout.activation_layers:
                feats[f"activation:{i}"] = acts[i].reshape(len(xb), -1)
        grads = access.gradients(xb, yb, layers=layout.gradient_layers)
        for name in layout.gradient_layers:
            feats[f"gradient:{name}"] = grads[name]
        yield {k: np.asarray(v, np.float32) for k, v in feats.items()}


def collect_features(
    access: TargetAccess, x: np.ndarray, y: np.ndarray, layout: FeatureLayout, *, batch_size: int
) -> dict[str, np.ndarray]:
    """All of :func:`stream_features` concatenated (for the attacker's known records only)."""
    parts: dict[str, list[np.ndarray]] = {}
    for batch in stream_features(access, x, y, layout, batch_size=batch_size):
        for k, v in batch.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}
