"""miaudit: membership-inference audits of machine-learning models.

The public API:

- :func:`miaudit.audit` audits a model (a scikit-learn estimator, a torch module, a model file,
  a URL, a callable) on its training and test records and returns an :class:`AuditRecord`;
- :func:`miaudit.read` reads an audit folder back as an :class:`AuditRecord`
  (``record.table()``, ``record.verdict``, ``record.roc(attack)``, ``record.write(dir)``);
- :class:`AuditConfig` and :func:`run_audit` are the pipeline underneath (every command uses them).

See ``docs/architecture.md`` for the layout.
"""

from __future__ import annotations

from typing import Any

from miaudit.errors import MiauditError

__version__ = "0.1.0"
__all__ = ["AuditConfig", "AuditRecord", "MiauditError", "TargetSource", "Verdict", "__version__", "audit", "read", "run_audit"]

_LAZY = {  # imported on first use: `import miaudit` stays light (no torch until needed)
    "audit": ("miaudit.api", "audit"),
    "read": ("miaudit.api", "read"),
    "AuditRecord": ("miaudit.core.record", "AuditRecord"),
    "TargetSource": ("miaudit.core.sources", "TargetSource"),
    "Verdict": ("miaudit.verdict", "Verdict"),
    "AuditConfig": ("miaudit.experiments.audit", "AuditConfig"),
    "run_audit": ("miaudit.experiments.audit", "run_audit"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'miaudit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
