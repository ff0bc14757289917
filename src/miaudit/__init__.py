"""miaudit: membership-inference audits of machine-learning models.

The flow runs one way: data set -> split -> target -> attacks -> metrics -> results.
See ``docs/architecture.md`` for the layout.
"""

from miaudit.errors import MiauditError

__version__ = "0.1.0"
__all__ = ["MiauditError", "__version__"]
