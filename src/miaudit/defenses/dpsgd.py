"""DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016) through Opacus:
per-sample gradients clipped to ``max_grad_norm``, Gaussian noise of standard deviation
``noise_multiplier * max_grad_norm`` added to each batch's summed gradient, Poisson-sampled
batches of expected size ``batch_size``, and a privacy accountant (RDP by default) that gives
the (epsilon, delta) the whole training spends.

Give either ``epsilon`` (Opacus finds the noise multiplier that spends exactly that budget at
``delta`` over the training) or ``noise_multiplier`` (then epsilon is what the accountant
reports). The achieved (epsilon, delta) is in the defense's info and so in every result.

Threat model: record-level differential privacy bounds every attack's advantage, whatever it
knows: TPR <= e^eps * FPR + delta. An adaptive attacker trains its shadows with DP-SGD too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.defenses.base import DEFENSES, DefendedModel, Defense, TrainingTask
from miaudit.defenses.training import new_module, require_torch_model, torch_classifier, with_epochs
from miaudit.errors import ConfigError


@DEFENSES.register("dpsgd")
class DPSGD(Defense):
    name = "dpsgd"
    paper = "Abadi et al., CCS 2016 (DP-SGD), via Opacus"
    stage = "training"
    defaults: dict[str, Any] = {
        "epsilon": 8.0,
        "delta": 1e-5,
        "noise_multiplier": None,
        "max_grad_norm": 1.0,
        "epochs": None,  # None: the recipe's
        "lr": None,  # None: the recipe's
        "batch_size": None,  # None: the recipe's (expected size under Poisson sampling)
        "accountant": "rdp",
    }

    def validate(self) -> None:
        if self.params["epsilon"] is not None and self.params["noise_multiplier"] is not None:
            raise ConfigError("defense 'dpsgd': give epsilon or noise_multiplier, not both (epsilon=none to use a noise multiplier)")
        if self.params["epsilon"] is None and self.params["noise_multiplier"] is None:
            raise ConfigError("defense 'dpsgd': give a target epsilon or a noise_multiplier")
        self._number("epsilon", low=1e-6, optional=True)
        self._number("noise_multiplier", low=0, optional=True)
        self._number("delta", low=0, high=1)
        if not 0 < self.params["delta"] < 1:
            raise ConfigError(f"defense 'dpsgd': delta must lie strictly between 0 and 1, got {self.params['delta']}")
        self._number("max_grad_norm", low=1e-9)
        self._number("epochs", low=1, integer=True, optional=True)
        self._number("lr", low=1e-12, optional=True)
        self._number("batch_size", low=1, integer=True, optional=True)
        if self.params["accountant"] not in ("rdp", "prv", "gdp"):
            raise ConfigError(f"defense 'dpsgd': accountant must be rdp, prv or gdp, got {self.params['accountant']!r}")

    def build(self, task: TrainingTask) -> DefendedModel:
        require_torch_model(task, self.name)
        module, info = train_dp(task, self.params)
        return DefendedModel(torch_classifier(module, task), info)


def train_dp(task: TrainingTask, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Train the task's model with Opacus; returns (plain module in eval mode, privacy report)."""
    import warnings

    import torch
    import torch.nn.functional as F
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    from miaudit.models.optim import OPTIMIZERS
    from miaudit.models.schedules import learning_rate
    from miaudit.models.seeding import derive_seed

    recipe = task.recipe
    changes: dict[str, Any] = {}
    if params["lr"] is not None:
        changes["lr"] = params["lr"]
    if params["batch_size"] is not None:
        changes["batch_size"] = params["batch_size"]
    recipe = with_epochs(recipe, params["epochs"] or recipe.epochs, **changes)
    idx = task.private_idx
    x = torch.from_numpy(np.ascontiguousarray(task.x[idx], dtype=np.float32))
    y = torch.from_numpy(np.asarray(task.y[idx], dtype=np.int64))
    if params["delta"] >= 1.0 / len(y):
        warnings.warn(f"DP-SGD delta {params['delta']} is not below 1/n = {1 / len(y):.2g}", stacklevel=2)
    module = new_module(task)
    module.train()
    optimizer = OPTIMIZERS.get(recipe.optimizer).torch(module.parameters(), recipe)
    with torch.random.fork_rng():
        torch.manual_seed(derive_seed(task.seed, "dpsgd"))  # Poisson batches and noise: reproducible per seed
        generator = torch.Generator().manual_seed(derive_seed(task.seed, "dpsgd/batches"))
        loader = DataLoader(TensorDataset(x, y), batch_size=recipe.batch_size, shuffle=True, generator=generator)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus' notes on secure RNG and optimizer choice
            engine = PrivacyEngine(accountant=params["accountant"])
            if params["epsilon"] is not None:
                private, optimizer, loader = engine.make_private_with_epsilon(
                    module=module, optimizer=optimizer, data_loader=loader,
                    target_epsilon=params["epsilon"], target_delta=params["delta"],
                    epochs=recipe.epochs, max_grad_norm=params["max_grad_norm"],
                )  # fmt: skip
            else:
                private, optimizer, loader = engine.make_private(
                    module=module, optimizer=optimizer, data_loader=loader,
                    noise_multiplier=params["noise_multiplier"], max_grad_norm=params["max_grad_norm"],
                )  # fmt: skip
        warnings.filterwarnings("ignore", message="Full backward hook is firing")  # inputs need no gradient
        for epoch in range(recipe.epochs):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(recipe, epoch)
            for xb, yb in loader:
                if len(yb) == 0:  # Poisson sampling can draw an empty batch
                    continue
                optimizer.zero_grad()
                F.cross_entropy(private(xb), yb).backward()
                optimizer.step()
        epsilon = float(engine.get_epsilon(params["delta"]))
    plain = private._module if hasattr(private, "_module") else private
    for p in plain.parameters():  # drop Opacus' per-sample gradient buffers
        for attr in ("grad_sample", "summed_grad"):
            if hasattr(p, attr):
                delattr(p, attr)
        p.grad = None
    plain.eval()
    info = {
        "epsilon": epsilon,
        "delta": float(params["delta"]),
        "noise_multiplier": float(optimizer.noise_multiplier),
        "max_grad_norm": float(params["max_grad_norm"]),
        "epochs": int(recipe.epochs),
        "expected_batch_size": int(recipe.batch_size),
        "sample_rate": float(recipe.batch_size / len(y)),
        "accountant": params["accountant"],
        "target_epsilon": params["epsilon"],
    }
    return plain, info
