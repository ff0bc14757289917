"""Loss attack with per-class thresholds: Yeom et al.'s metric (IEEE CSF 2018), log p_y = minus
the cross-entropy loss, calibrated as Song and Mittal (USENIX Security 2021) calibrate their
metric attacks: one threshold per class, maximising balanced accuracy on shadow models (see
:mod:`miaudit.attacks.class_thresholds`). The ``loss`` attack keeps Yeom et al.'s single
threshold, the shadows' mean training loss.

Within a class, log p_y orders records as p_y does, so this attack's decisions are those of the
``confidence`` attack (barring probabilities below the log's floor); its scores, and hence its
AUC, differ because the shift by the class threshold is measured on the log scale.
"""

from __future__ import annotations

from miaudit.attacks.base import ATTACKS
from miaudit.attacks.class_thresholds import ClassThresholdAttack
from miaudit.attacks.loss import log_true_class_probability


@ATTACKS.register("loss-class")
class LossPerClassAttack(ClassThresholdAttack):
    """Yeom et al. (CSF 2018) with Song & Mittal's per-class thresholds (USENIX Security 2021):
    member iff log p_y >= the threshold of class y. Threat model: the gray box of ``loss``,
    i.e. the full probability vector plus shadow models with the target's architecture and
    recipe on the attacker's same-distribution pool."""

    name = "loss-class"
    paper = "Yeom et al., CSF 2018 (per-class)"
    metric = staticmethod(log_true_class_probability)
