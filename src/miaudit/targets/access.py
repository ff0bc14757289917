"""TargetAccess: the only door through which an attack sees the target.

It releases exactly what the threat model's output access allows (labels, top-k probabilities
with their class indices, or the full probability vector), counts queries (one per record per
call) and enforces an optional query budget.

The target is either an in-process model with ``predict_proba`` or a :class:`QueryBackend`
(e.g. :class:`miaudit.targets.http_target.HttpTarget`, a model behind an HTTP server) that
answers ``query(x, output, k)`` with at most what it releases itself; a backend that releases
less than the threat model asks for raises :class:`AccessDeniedError` (it never fakes outputs).

The query budget counts records: each record in each call is one query, white-box calls
included (``parameters()`` counts as one). One TargetAccess is one attack's budget: the audit
gives each attack a fresh one, so a budget of N allows N queries *per attack*.

Under a white-box threat model (and only then) an in-process torch target also answers
``losses``, ``gradients``, ``activations`` and ``parameters``; any other backend (a scikit-learn
estimator, a model behind HTTP) raises :class:`AccessDeniedError`, as white-box access needs the
module itself. These run on the run's device (``--device``; :mod:`miaudit.models.device`) and
answer numpy arrays on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from miaudit.errors import InputError, MiauditError
from miaudit.threat import OutputAccess, ThreatModel


class AccessDeniedError(MiauditError):
    """An attack asked for more than its threat model releases."""


class QueryBudgetExceededError(MiauditError):
    """The attack used up its query budget."""


class ProbabilisticModel(Protocol):
    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


QueryAnswer = tuple[np.ndarray, "np.ndarray | None", "np.ndarray | None"]
"""``(labels, probabilities or None, classes or None)`` of one backend query."""


@runtime_checkable
class QueryBackend(Protocol):
    """A target that answers queries itself, releasing no more than it allows.

    ``query(x, output, k)`` returns ``(labels, probs, classes)``: with ``output=LABEL``,
    ``probs`` and ``classes`` are None; with ``TOP_K``, ``probs`` holds the ``k`` largest
    probabilities per record (descending) and ``classes`` their class indices; with
    ``PROBABILITIES``, ``probs`` is the full vector and ``classes`` None. It raises
    :class:`AccessDeniedError` when asked for more than it releases.
    """

    def query(self, x: np.ndarray, output: OutputAccess, k: int | None) -> QueryAnswer: ...


def top_k(proba: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest probabilities per row (descending, ties by class index) and their classes."""
    idx = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(proba, idx, axis=1), idx


class ModelBackend:
    """:class:`QueryBackend` over an in-process model with ``predict_proba``."""

    def __init__(self, model: ProbabilisticModel) -> None:
        self.model = model

    @property
    def module(self) -> Any:
        """The model's torch module (``TorchClassifier.module``), or None when it has none."""
        module = getattr(self.model, "module", None)
        try:
            from torch import nn
        except ImportError:  # pragma: no cover - torch is a dependency
            return None
        return module if isinstance(module, nn.Module) else None

    def query(self, x: np.ndarray, output: OutputAccess, k: int | None) -> QueryAnswer:
        proba = self.model.predict_proba(x)
        labels = proba.argmax(axis=1)
        if output == OutputAccess.LABEL:
            return labels, None, None
        if output == OutputAccess.TOP_K:
            probs, classes = top_k(proba, int(k if k is not None else proba.shape[1]))
            return labels, probs, classes
        return labels, proba, None


class TargetAccess:
    """Query interface to a target model (or a :class:`QueryBackend`) under a threat model."""

    def __init__(
        self, model: ProbabilisticModel | QueryBackend, threat: ThreatModel, *, input_shape: tuple[int, ...]
    ) -> None:
        self._model = model
        self._backend: QueryBackend = model if isinstance(model, QueryBackend) else ModelBackend(model)
        self.threat = threat
        self.input_shape = tuple(input_shape)
        self.queries = 0

    @property
    def output(self) -> OutputAccess:
        return self.threat.output

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise InputError(f"queries must have shape (n, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        return x

    def _charge(self, n: int) -> None:
        """Fail before asking the target if ``n`` more queries would exceed the budget."""
        budget = self.threat.query_budget
        if budget is not None and self.queries + n > budget:
            raise QueryBudgetExceededError(
                f"query budget of {budget} exceeded ({self.queries} used, {n} more asked); raise the budget"
            )

    def _query(self, x: np.ndarray, output: OutputAccess, k: int | None) -> QueryAnswer:
        x = self._check_input(x)
        self._charge(len(x))
        answer = self._backend.query(x, output, k)
        self.queries += len(x)
        return answer

    def predict_label(self, x: np.ndarray) -> np.ndarray:
        """Predicted class per record (every threat model allows this)."""
        return self._query(x, OutputAccess.LABEL, None)[0]

    def predict_topk(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k largest probabilities (descending) and their class indices."""
        if self.output < OutputAccess.TOP_K:
            raise AccessDeniedError(f"threat model {self.threat.name!r} releases labels only")
        if self.output == OutputAccess.TOP_K:
            _, probs, classes = self._query(x, OutputAccess.TOP_K, self.threat.top_k)
            assert probs is not None and classes is not None
            return probs, classes
        _, proba, _ = self._query(x, OutputAccess.PROBABILITIES, None)
        assert proba is not None
        return top_k(proba, proba.shape[1])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The full probability vector per record."""
        if self.output < OutputAccess.PROBABILITIES:
            raise AccessDeniedError(f"threat model {self.threat.name!r} does not release full probability vectors")
        proba = self._query(x, OutputAccess.PROBABILITIES, None)[1]
        assert proba is not None
        return proba

    # -- white box -------------------------------------------------------------------------

    def _white_box_module(self) -> Any:
        if self.output < OutputAccess.WHITE_BOX:
            raise AccessDeniedError(f"threat model {self.threat.name!r} does not release white-box access")
        module = getattr(self._backend, "module", None)
        if module is None:
            raise AccessDeniedError(
                "white-box access needs an in-process torch model (a TorchClassifier); this target is not one"
            )
        return module

    def _placed_module(self) -> Any:
        """The white-box module on the run's device (:func:`miaudit.models.device.current_device`):
        the module itself on the CPU, else the classifier's device copy."""
        from miaudit.models.device import current_device

        module = self._white_box_module()
        device = current_device()
        if device.type == "cpu":
            return module
        on_device = getattr(getattr(self._backend, "model", None), "on_device", None)  # a TorchClassifier's copy
        return on_device(device) if on_device is not None else module  # any other module answers on the CPU

    def _white_box_batches(self, x: np.ndarray, y: np.ndarray | None = None) -> tuple[Any, list[Any]]:
        """Check access, inputs and budget; charge the records; return the module (on the run's
        device) and torch batches on the module's device."""
        import torch

        module = self._placed_module()
        x = self._check_input(x)
        if y is not None:
            y = np.asarray(y)
            if y.shape != (len(x),):
                raise InputError(f"labels must have shape ({len(x)},), got {y.shape}")
        self._charge(len(x))
        self.queries += len(x)
        device = next(module.parameters(), torch.empty(0)).device
        batches = []
        for start in range(0, len(x), _WHITE_BOX_BATCH):
            xb = torch.from_numpy(np.ascontiguousarray(x[start : start + _WHITE_BOX_BATCH]))
            yb = None if y is None else torch.as_tensor(y[start : start + _WHITE_BOX_BATCH], dtype=torch.long)
            if device.type != "cpu":
                xb, yb = xb.to(device), None if yb is None else yb.to(device)
            batches.append((xb, yb))
        return module, batches

    def losses(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-record cross-entropy loss (float64), ``-log softmax(logits)[y]``."""
        import torch

        module, batches = self._white_box_batches(x, y)
        out = []
        with torch.no_grad():
            for xb, yb in batches:
                logp = torch.log_softmax(module(xb).double(), dim=1)
                out.append(-logp.gather(1, yb[:, None])[:, 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def gradients(self, x: np.ndarray, y: np.ndarray, layers: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Per-record gradient of the cross-entropy loss w.r.t. the parameters, flattened per layer.

        Returns ``{layer name: (n, parameters of that layer)}`` in the module's parameter order; a
        layer's tensors (weight, then bias) are concatenated in ``named_parameters`` order.
        ``layers`` (names as returned, e.g. ``"9"``) restricts the gradients to those layers, the
        others held fixed, so that memory scales with the chosen layers only (default: all).
        Computed with ``torch.func.vmap(grad(...))`` over ``functional_call``.
        """
        import torch
        from torch.func import functional_call, grad, vmap

        all_layers = self.parameter_layers()
        chosen = list(all_layers) if layers is None else list(layers)
        unknown = [name for name in chosen if name not in all_layers]
        if unknown:
            raise InputError(f"unknown layers {unknown}; the model's layers are {list(all_layers)}")
        module, batches = self._white_box_batches(x, y)
        wanted = {name for layer in chosen for name in all_layers[layer]}
        params = {k: v.detach() for k, v in module.named_parameters() if k in wanted}
        fixed = {k: v.detach() for k, v in module.named_parameters() if k not in wanted}
        buffers = {k: v.detach() for k, v in module.named_buffers()}

        def loss_one(p: dict[str, Any], xi: Any, yi: Any) -> Any:
            logits = functional_call(module, ({**fixed, **p}, buffers), (xi[None],))
            return torch.nn.functional.cross_entropy(logits, yi[None])

        per_record = vmap(grad(loss_one), in_dims=(None, 0, 0))
        layers = {layer: all_layers[layer] for layer in all_layers if layer in chosen}
        chunks: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
        for xb, yb in batches:
            g = per_record(params, xb, yb)
            for layer, names in layers.items():
                flat = torch.cat([g[name].reshape(len(xb), -1) for name in names], dim=1)
                chunks[layer].append(flat.cpu().numpy())
        n_total = sum(len(xb) for xb, _ in batches)
        return {
            layer: np.concatenate(parts)
            if parts
            else np.zeros((n_total, sum(params[n].numel() for n in layers[layer])), dtype=np.float32)
            for layer, parts in chunks.items()
        }

    def parameter_layers(self) -> dict[str, list[str]]:
        """``{layer name: its parameter names}`` in the module's parameter order (no query is charged:
        the architecture is known under white-box access)."""
        module = self._white_box_module()
        layers: dict[str, list[str]] = {}
        for name, _ in module.named_parameters():
            layers.setdefault(name.rpartition(".")[0] or name, []).append(name)
        return layers

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Outputs of the module's Linear and Conv layers, one ``(n, ...)`` array per layer, in forward order."""
        import torch
        from torch import nn

        module, batches = self._white_box_batches(x)
        layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
        seen: list[list[np.ndarray]] = []
        order: dict[int, int] = {}  # id(layer) -> index in forward order, fixed on the first batch
        current: list[tuple[int, np.ndarray]] = []

        def hook(layer: nn.Module, _inputs: Any, output: Any) -> None:
            current.append((id(layer), output.detach().cpu().numpy().copy()))

        handles = [layer.register_forward_hook(hook) for layer in layers]
        try:
            with torch.no_grad():
                for xb, _ in batches:
                    current.clear()
                    module(xb)
                    for key, value in current:
                        if key not in order:
                            order[key] = len(order)
                            seen.append([])
                        seen[order[key]].append(value)
        finally:
            for handle in handles:
                handle.remove()
        return [np.concatenate(parts) for parts in seen]

    def parameters(self) -> dict[str, np.ndarray]:
        """A copy of every parameter as a numpy array, by name (counts as one query)."""
        module = self._white_box_module()
        self._charge(1)
        self.queries += 1
        return {name: p.detach().cpu().numpy().copy() for name, p in module.named_parameters()}


_WHITE_BOX_BATCH = 256
