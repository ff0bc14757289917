"""Every registered attack on targets where the answer is known (see tests/synthetic.py)."""

import pytest

from miaudit.attacks import ATTACKS
from miaudit.threat import OutputAccess
from synthetic import audit_synthetic

# Attacks that read only the predicted label cannot beat the forest's guess rate on memorized
# random labels: their AUC on the memorizing target is about 1/2 + (1 - 1/classes)/2 = 0.95.
MEMORIZING_FLOOR = 0.9




def _audit(tmp_path, kind: str, name: str) -> float:
    """Gray box against the tree targets; a white-box attack (which needs a torch module) against
    the synthetic MLP under the white-box preset that grants what it requires."""
    if ATTACKS.get(name).requirements.output < OutputAccess.WHITE_BOX:
        return audit_synthetic(tmp_path, kind, (name,))[name]
    return audit_synthetic(tmp_path, kind, (name,), threat_model="white-box-partial", white_box=True)[name]


@pytest.mark.parametrize("name", ATTACKS.names())
def test_outputs_independent_of_membership_give_chance(tmp_path, name):
    auc = _audit(tmp_path, "independent", name)
    assert 0.45 <= auc <= 0.55, auc


@pytest.mark.parametrize("name", ATTACKS.names())
def test_memorizing_target_is_caught(tmp_path, name):
    auc = _audit(tmp_path, "memorizing", name)
    assert auc >= MEMORIZING_FLOOR, auc
