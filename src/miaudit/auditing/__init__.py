"""Empirical privacy auditing: canaries (``canaries``), the training runs that insert them
(``runs``), and epsilon lower bounds (and one estimate) from membership scores, one module per
method.

``BOUNDS`` maps a method's name to its entry function, each returning a :class:`BoundResult`:
``clopper-pearson`` (lower bound), ``gdp`` (estimate), ``one-run`` (lower bound, Steinke et al. 2023),
``one-run-fdp`` (lower bound from the same one-run game via f-DP, Mahloujifar et al. 2024). Epsilon in nats.
``simulate.randomized_response_canaries`` gives known-answer canaries (exactly epsilon-DP scores).
"""

from miaudit.auditing import clopper_pearson, fdp_one_run, gdp, one_run  # noqa: F401  (register the methods)
from miaudit.auditing.base import BOUNDS, BoundResult

__all__ = ["BOUNDS", "BoundResult", "clopper_pearson", "fdp_one_run", "gdp", "one_run"]
