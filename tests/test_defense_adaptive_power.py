"""What each defense of issue 15 does to the strongest adaptive attack's TPR at 1% FPR on a
memorising Location30 target (``miaudit defend``'s own pipeline, :func:`run_defend`).

Setting: Location30, 500 members, 1000 evaluated non-members (1% FPR is then 10 false
positives, the least :func:`miaudit.metrics.tpr_at_fpr` measures), an attacker pool of 2000,
a defender's reference set of 500; the data set's default MLP and recipe (train accuracy 1.000,
test 0.530); seed 0; adaptive attacker (every shadow built with the defense at the target's
training-set size, every online reference at the size :func:`reference_train_size` gives: 750,
half the 1500 candidates); attacks loss, confidence, modified entropy and RMIA with 2 shadow
models. "Strongest" is the maximum over those attacks on the target's truth, the upper-bound
column: the stringent reading for a defense, since any one attack that stays strong fails it.
Three defenses run lighter than their defaults to keep the file near a minute, and say so in
``SPECS``.

Measured here (seed 0; 2-core machine), strongest TPR@1%FPR (RMIA on every row): undefended
0.756; hamp 0.074, selena (K 4, L 2) 0.108, dpsgd (noise multiplier 2, 10 epochs) 0.048,
advreg (k 2) 0.380, memguard (g 100 epochs, 60 iterations) 0.166, dmp 0.548; relaxloss 0.670
and label smoothing 0.848. The six defenses in :data:`LOWERS` cut it by at least
:data:`LEAST_DROP` (the smallest drop is 0.21, dmp's), so one that stopped working fails.
RelaxLoss and label smoothing do not: against RMIA whose references are trained with the same
defense they give 0.09 and -0.09 (the HAMP-style table in the README finds the same at 1500
members); the test pins that they stay within :data:`LEAST_DROP` of the undefended figure or
above it, so a change that makes them protect is noticed and its figures rechecked. (Before
the online references were sized like the target, the undefended attacker's references trained
on 1750 records and the defended ones on 500, and these two appeared to lower the attack to
about 0.31 from 0.504.)
"""

import os
from pathlib import Path

import pytest

from miaudit.data.split import SplitSizes
from miaudit.experiments.defend import DefendConfig, run_defend

SPECS = (
    "hamp",
    "relaxloss",
    "label-smoothing",
    "selena:K=4,L=2",  # K 25, L 10 by default: 26 trainings per model
    "dpsgd:epsilon=none,noise_multiplier=2,epochs=10",  # epsilon about 7 here; 30 epochs by default
    "advreg:k=2",  # k 5 by default
    "memguard:defender_epochs=100,max_iter=60",  # g 400 epochs, 300 iterations by default
    "dmp",
)
LEAST_DROP = 0.10
LOWERS = ("hamp", "selena:K=4,L=2", "dpsgd:epsilon=none,noise_multiplier=2,epochs=10", "advreg:k=2",
          "memguard:defender_epochs=100,max_iter=60", "dmp")  # fmt: skip
MEMBERS = 500


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    value = os.environ.get("MIAUDIT_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("MIAUDIT_DATA_DIR is not set to the shared data folder (make test sets it)")
    config = DefendConfig(
        dataset="location30", defenses=("none", *SPECS), seeds=(0,), attacks=("loss", "confidence", "modified-entropy", "rmia"),
        n_shadow_models=2, split=SplitSizes(target_in=MEMBERS, target_out=1000, attacker_pool=2000, population=MEMBERS),
        n_bootstrap=0, data_dir=value, cache_dir=str(tmp_path_factory.mktemp("cache")),
    )  # fmt: skip
    result = run_defend(config)
    return {row["defense"]: row for row in result["rows"]}, result["per_seed"]


def _strongest(per_seed, spec):
    (run,) = per_seed[spec]
    return run["upper_bound"]["tpr_at_1pct_fpr"]["value"]


def test_the_undefended_target_memorises(study):
    _, per_seed = study
    (run,) = per_seed["none"]
    assert run["train_accuracy"] == 1.0 and _strongest(per_seed, "none") >= 0.3


@pytest.mark.parametrize("spec", SPECS)
def test_what_the_defense_does_to_the_strongest_adaptive_attack(study, spec):
    rows, per_seed = study
    sizes = rows[spec]["adaptive_models"]
    assert sizes is not None and sizes["shadows"]["train_size"] == MEMBERS  # adaptive, at the target's size
    assert sizes["online_references"]["train_size"] == 750  # half the 1500 candidates, more than the target's 500
    undefended, defended = _strongest(per_seed, "none"), _strongest(per_seed, spec)
    if spec in LOWERS:
        assert defended <= undefended - LEAST_DROP, (spec, defended, undefended)
    else:  # relaxloss, label smoothing: no protection against the adaptive online attack here
        assert defended > undefended - LEAST_DROP, (spec, defended, undefended)
