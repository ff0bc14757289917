"""The survey's cause-analysis studies (section 6) and per-record risk; see :mod:`miaudit.studies.base`.

Importing this package fills :data:`STUDIES` (one module per study).
"""

from miaudit.studies import classes, feature_variance, model_type, overfitting, per_record_risk, text_leakage  # noqa: F401  (registration)
from miaudit.studies.base import DEFAULT_ATTACKS, STUDIES, Study, StudyConfig, StudyResult
from miaudit.studies.output import write_study

__all__ = ["DEFAULT_ATTACKS", "STUDIES", "Study", "StudyConfig", "StudyResult", "write_study"]
