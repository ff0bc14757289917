"""Mini-batch training with early stopping on a held-out loss, shared by the attack networks
(the NN attack, NSH): the weights of the best validation epoch are kept."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from miaudit.attacks.attack_models import single_threaded


def train_early_stopping(
    net: Any,
    optimizer: Any,
    order: Any,
    n_train: int,
    batch_loss: Callable[[Any], Any],
    validation_loss: Callable[[], float],
    *,
    batch_size: int,
    max_epochs: int,
    patience: int,
) -> dict[str, float]:
    """Train ``net`` on ``n_train`` records in batches drawn by the generator ``order``
    (``batch_loss(idx)`` is the loss of a batch of indices), stop after ``patience`` epochs
    without a better ``validation_loss()``, restore the best epoch's weights, leave it in eval mode.
    Returns the epochs run, the best epoch and its validation loss."""
    import torch

    from miaudit.models.seeding import epoch_permutation

    best, best_state, best_epoch, epoch = math.inf, None, 0, 0
    with single_threaded():
        for epoch in range(1, max_epochs + 1):
            net.train()
            batch_order = epoch_permutation(n_train, order)
            for start in range(0, n_train, batch_size):
                optimizer.zero_grad()
                batch_loss(batch_order[start : start + batch_size]).backward()
                optimizer.step()
            net.eval()
            with torch.no_grad():
                loss = float(validation_loss())
            if loss < best - 1e-6:
                best, best_epoch = loss, epoch
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            elif epoch - best_epoch >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return {"epochs_run": epoch, "best_epoch": best_epoch, "validation_loss": best}
