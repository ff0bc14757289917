"""Every registered attack on targets where the answer is known (see tests/synthetic.py)."""

import pytest

from miaudit.attacks import ATTACKS
from synthetic import audit_synthetic

# Attacks that read only the predicted label cannot beat the forest's guess rate on memorized
# random labels: their AUC on the memorizing target is about 1/2 + (1 - 1/classes)/2 = 0.95.
MEMORIZING_FLOOR = 0.9


@pytest.mark.parametrize("name", ATTACKS.names())
def test_outputs_independent_of_membership_give_chance(tmp_path, name):
    auc = audit_synthetic(tmp_path, "independent", (name,))[name]
    assert 0.45 <= auc <= 0.55, auc


@pytest.mark.parametrize("name", ATTACKS.names())
def test_memorizing_target_is_caught(tmp_path, name):
    auc = audit_synthetic(tmp_path, "memorizing", (name,))[name]
    assert auc >= MEMORIZING_FLOOR, auc
