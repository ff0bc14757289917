"""The Python front door: ``miaudit.audit(model, train=..., test=...)`` and ``miaudit.read(dir)``.

Both build on the one pipeline (:func:`miaudit.experiments.audit.run_audit`) and the one record
(:class:`miaudit.core.record.AuditRecord`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from miaudit.core.record import AuditRecord
from miaudit.core.record import read as _read


def audit(
    model: Any = None,
    *,
    train: tuple[Any, Any] | None = None,
    test: tuple[Any, Any] | None = None,
    pool: tuple[Any, Any] | None = None,
    dataset: str | None = None,
    threat_model: str = "gray-box",
    attacks: Sequence[str] | None = None,
    shadow_model: Any = None,
    shadow_recipe: dict[str, Any] | None = None,
    n_shadow_models: int = 4,
    n_bootstrap: int = 200,
    seed: int = 0,
    pool_share: float = 0.5,
    class_names: Sequence[str] = (),
    trust_model_code: bool = False,
    **options: Any,
) -> AuditRecord:
    """Audit ``model`` for membership leakage and return the :class:`AuditRecord`.

    ``model`` is a fitted scikit-learn estimator or pipeline, a ``torch.nn.Module`` returning
    logits, anything with ``predict_proba``, a callable returning logits or probabilities, a
    path to a model file (``.onnx``, ``.skops``), a URL of a served model, or a
    :class:`~miaudit.core.sources.TargetSource`. ``train`` = ``(x, y)``: the records it was
    trained on (the members); ``test`` = ``(x, y)``: records it never saw (the non-members);
    ``pool`` = ``(x, y)``: further same-distribution records the attacker may use (default: a
    ``pool_share`` of ``test``, then not evaluated). Labels are class indices 0..C-1 in the
    model's column order. With ``model=None`` and ``dataset`` a registered name, miaudit trains
    the target itself (``model_name=`` etc. in ``options``, as :class:`AuditConfig` fields).

    ``threat_model`` (``black-box``, ``gray-box``, ``white-box``, ``label-only``) says what the
    attacker has; ``shadow_model`` (``"same"``, a miaudit model name or a callable
    ``f(x, y, seed) -> model``) is the attacker's stand-in for the model's recipe, which shadow
    and reference attacks (loss thresholds, Shokri, LiRA, RMIA) need. Membership truth reaches
    only the metrics and the verdict.

    A TorchScript file (``.pt``) is a program and is refused unless ``trust_model_code=True``;
    then it runs in a sandboxed process that can write only to a scratch folder
    (:class:`~miaudit.targets.external.TorchScriptClassifier`).
    """
    from miaudit.core.own_data import OwnData
    from miaudit.errors import ConfigError
    from miaudit.experiments.audit import AuditConfig, run_audit

    if model is None:
        if dataset is None:
            raise ConfigError("give a model to audit (with train= and test=), or a registered dataset= to train one here")
        config = AuditConfig(dataset=dataset, threat_model=threat_model, attacks=tuple(attacks) if attacks else None,
                             n_shadow_models=n_shadow_models, n_bootstrap=n_bootstrap, seed=seed, **options)  # fmt: skip
        return run_audit(config, progress=False).record()
    if train is None or test is None:
        raise ConfigError("give train=(x, y), the model's training records, and test=(x, y), records it never saw")
    source = _source_of(model, trust_model_code)
    own = OwnData(train=train, test=test, pool=pool, pool_share=pool_share, class_names=tuple(class_names))
    config = AuditConfig(
        dataset=own.name, threat_model=threat_model, attacks=tuple(attacks) if attacks else None,
        n_shadow_models=n_shadow_models, n_bootstrap=n_bootstrap, seed=seed, target=source, own_data=own,
        shadow_model=shadow_model, shadow_recipe=dict(shadow_recipe or {}), **options,
    )  # fmt: skip
    return run_audit(config, progress=False).record()


def _source_of(model: Any, trust_model_code: bool = False) -> Any:
    """A path is a model file, an http(s) address a served model, anything else a Python object.
    ``trust_model_code`` becomes the file source's option (it means nothing for the others)."""
    from miaudit.core.sources import TargetSource
    from miaudit.errors import ConfigError

    if isinstance(model, TargetSource):
        source = model
    elif isinstance(model, (str, Path)):
        text = str(model)
        source = TargetSource("url" if text.startswith(("http://", "https://")) else "file", text)
    else:
        source = TargetSource("object", model)
    if not trust_model_code:
        return source
    if source.kind != "file":
        raise ConfigError(f"trust_model_code=True applies to model files (a TorchScript .pt), not to a {source.kind} target")
    return TargetSource("file", source.value, {**source.options, "trust_model_code": True})


def read(run_dir: str | Path) -> AuditRecord:
    """The audit record written in ``run_dir`` (``results.json`` + ``scores.csv``)."""
    return _read(run_dir)
