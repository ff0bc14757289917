"""Per-data-set defaults for an audit: the target's model, training recipe and split sizes.

The Location30 / Purchase100 / Texas100 settings follow the literature's tabular targets
(Shokri et al., S&P 2017; Salem et al., NDSS 2019): a Tanh MLP trained with Adam, with half of
the data for the target (members + non-members) and half for the attacker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from miaudit.data.split import SplitSizes
from miaudit.registry import Registry


@dataclass(frozen=True)
class AuditDefaults:
    model: str
    model_options: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    split: SplitSizes = SplitSizes()


DEFAULTS: Registry[AuditDefaults] = Registry("data set default")

_TABULAR_RECIPE = {"optimizer": "adam", "lr": 1e-3, "epochs": 30, "batch_size": 64}
_IMAGE_RECIPE = {"optimizer": "adam", "lr": 1e-3, "epochs": 15, "batch_size": 64}

DEFAULTS.add("digits", AuditDefaults("mlp", {"hidden": [256], "activation": "tanh"}, {**_TABULAR_RECIPE, "epochs": 100}))
DEFAULTS.add("location30", AuditDefaults("mlp", {"hidden": [128], "activation": "tanh"}, _TABULAR_RECIPE))
DEFAULTS.add("purchase100", AuditDefaults("mlp", {"hidden": [128], "activation": "tanh"}, _TABULAR_RECIPE))
DEFAULTS.add("texas100", AuditDefaults("mlp", {"hidden": [128], "activation": "tanh"}, _TABULAR_RECIPE))
# Images: a few thousand records keep a CPU audit to minutes; raise the sizes on a bigger machine.
_IMAGE_SPLIT = SplitSizes(target_in=2500, target_out=2500, attacker_pool=5000, population=0)
DEFAULTS.add("mnist", AuditDefaults("cnn", {}, _IMAGE_RECIPE, _IMAGE_SPLIT))
DEFAULTS.add("mnist-test", AuditDefaults("cnn", {}, _IMAGE_RECIPE, _IMAGE_SPLIT))
DEFAULTS.add("cifar10", AuditDefaults("cnn", {}, _IMAGE_RECIPE, _IMAGE_SPLIT))

FALLBACK = AuditDefaults("mlp", {"hidden": [128], "activation": "tanh"}, _TABULAR_RECIPE)


def defaults_for(dataset: str) -> AuditDefaults:
    """The defaults registered for ``dataset``, or the tabular fallback for user data."""
    return DEFAULTS.get(dataset) if dataset in DEFAULTS else FALLBACK
