"""Label smoothing, RelaxLoss, HAMP and SELENA (miaudit.defenses) on a small Location30 subset.

Setting, chosen so that the undefended target memorises (train accuracy 1.000): 300 members and
300 non-members drawn with a fixed permutation, a 64-unit tanh MLP, Adam at 3e-3, 15 epochs.
Measured here (shared 2-core machine): undefended train 1.000 / test 0.473, confidence AUC
0.986. Stated bars for every defense: test accuracy >= the majority-class rate + 0.15 and at
most 0.15 below the undefended model's. The attack is the true-class confidence (the raw metric
of the confidence attack, no calibration), scored as AUC of members against non-members
through the released model's ``predict_proba``; each defense must lower it by at least the
stated margin, except label smoothing (see its test). Those bars sit below what was measured
(in brackets in ``SPECS``), so a defense that stopped working or stopped learning fails.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from miaudit.data import load_dataset
from miaudit.defenses import DEFENSES, TrainingTask, parse_defense
from miaudit.errors import ConfigError
from miaudit.metrics import auc
from miaudit.models import TrainingRecipe

NEW = ("label-smoothing", "relaxloss", "hamp", "selena")

#: spec -> least drop of the confidence AUC against the undefended model [measured AUC].
#: RelaxLoss' alpha is raised from the authors' Purchase value (0.8) to 1.5 for 300 records:
#: with 0.8 it reached AUC 0.964 and test accuracy 0.353 here.
SPECS = {
    "relaxloss:alpha=1.5": 0.03,  # [0.903, test 0.440]
    "hamp": 0.10,  # [0.772, test 0.423]
}
SELENA = ("selena:K=4,L=2", 0.10)  # [0.672, test 0.377]: checked with its split in its own test
MARGIN_OVER_MAJORITY = 0.15
MAX_ACCURACY_DROP = 0.15


@pytest.fixture(scope="module")
def data():
    value = os.environ.get("MIAUDIT_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("MIAUDIT_DATA_DIR is not set to the shared data folder (make test sets it)")
    ds = load_dataset("location30", value)
    perm = np.random.default_rng(7).permutation(len(ds.y))
    private, test = np.sort(perm[:300]), np.sort(perm[300:600])
    task = TrainingTask(
        x=ds.x, y=ds.y, private_idx=private, reference_idx=None, num_classes=ds.num_classes, seed=0, model="mlp",
        options={"hidden": (64,), "activation": "tanh"}, recipe=TrainingRecipe(epochs=15, lr=3e-3),
    )  # fmt: skip
    return ds, task, test


def _confidence(model, x, y):
    p = np.asarray(model.predict_proba(x))
    return p[np.arange(len(y)), y], p.argmax(axis=1)


def _figures(model, ds, task, test):
    """(train accuracy, test accuracy, confidence AUC members vs non-members)."""
    c_in, pred_in = _confidence(model, ds.x[task.private_idx], ds.y[task.private_idx])
    c_out, pred_out = _confidence(model, ds.x[test], ds.y[test])
    truth = np.r_[np.ones(len(c_in), bool), np.zeros(len(c_out), bool)]
    return (pred_in == ds.y[task.private_idx]).mean(), (pred_out == ds.y[test]).mean(), auc(np.r_[c_in, c_out], truth)


@pytest.fixture(scope="module")
def undefended(data):
    ds, task, test = data
    model = parse_defense("none").build(task).model
    return model, _figures(model, ds, task, test)


def test_new_defenses_are_registered_and_listed():
    assert set(NEW) <= set(DEFENSES.names())
    assert all(DEFENSES.get(n).stage == "training" for n in NEW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-m", "miaudit", "defenses"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in NEW:
        assert name in out.stdout


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("label-smoothing:smoothing=1", "smoothing must be"),
        ("label-smoothing:smoothing=-0.1", "smoothing must be"),
        ("relaxloss:alpha=0", "alpha must be"),
        ("relaxloss:upper=1.5", "upper must be"),
        ("hamp:gamma=1", "gamma must be"),
        ("hamp:alpha=-1", "alpha must be"),
        ("hamp:modify_output=2", "modify_output must be"),
        ("selena:K=1", "K must be"),
        ("selena:K=4,L=4", "L must be below K"),
        ("selena:L=0.5", "L must be"),
        ("selena:M=3", "no parameter M"),
    ],
)
def test_bad_parameters_are_one_line_config_errors(spec, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_defense(spec)
    assert "\n" not in str(info.value)


def test_undefended_target_memorises(undefended):
    train, test, auc_ = undefended[1]
    assert train == 1.0 and auc_ > 0.9 and test > 0.3


@pytest.mark.parametrize("spec", list(SPECS))
def test_defense_keeps_accuracy_and_lowers_the_confidence_attack(data, undefended, spec):
    ds, task, test = data
    model = parse_defense(spec).build(task).model
    _, acc, auc_ = _figures(model, ds, task, test)
    _, base_acc, base_auc = undefended[1]
    majority = np.bincount(ds.y[test]).max() / len(test)
    assert acc >= majority + MARGIN_OVER_MAJORITY and acc >= base_acc - MAX_ACCURACY_DROP, (spec, acc)
    assert auc_ <= base_auc - SPECS[spec], (spec, auc_, base_auc)


def test_label_smoothing_caps_confidence_but_not_the_ranking(data, undefended):
    """Label smoothing lowers every member's confidence but keeps their order above
    non-members: on this memorising target its confidence AUC is not lower (0.990 vs 0.986 at
    s 0.1), as HAMP's authors also find for label smoothing. What is checked: accuracy bars and
    the members' mean confidence falling towards the smoothed target 1 - s + s / C."""
    ds, task, test = data
    s = 0.3
    model = parse_defense(f"label-smoothing:smoothing={s}").build(task).model
    _, acc, _ = _figures(model, ds, task, test)
    majority = np.bincount(ds.y[test]).max() / len(test)
    assert acc >= majority + MARGIN_OVER_MAJORITY and acc >= undefended[1][1] - MAX_ACCURACY_DROP
    conf_smooth, _ = _confidence(model, ds.x[task.private_idx], ds.y[task.private_idx])
    conf_plain, _ = _confidence(undefended[0], ds.x[task.private_idx], ds.y[task.private_idx])
    assert conf_smooth.mean() < conf_plain.mean() - 0.1
    assert conf_smooth.mean() < 1 - s + s / 30 + 0.02  # at most the smoothed target, on average


def test_relaxloss_keeps_the_training_loss_near_alpha(data):
    ds, task, _ = data
    alpha = 1.5
    model = parse_defense(f"relaxloss:alpha={alpha}").build(task).model
    conf, _ = _confidence(model, ds.x[task.private_idx], ds.y[task.private_idx])
    mean_loss = float(-np.log(np.maximum(conf, 1e-12)).mean())
    assert 0.5 * alpha <= mean_loss <= 2.0 * alpha, mean_loss  # undefended: far below 0.5


def test_hamp_release_keeps_the_ranking_and_hides_the_values(data):
    from miaudit.defenses.hamp import rank_preserving_release, top_probability, soft_label_entropy

    ds, task, _ = data
    p = top_probability(30, 0.5)
    assert abs(soft_label_entropy(p, 30) - 0.5 * np.log(30)) < 1e-9 and 1 / 30 < p < 1
    defended = parse_defense("hamp").build(task).model
    plain = parse_defense("hamp:modify_output=false").build(task).model  # same seed: the same trained model
    x = ds.x[task.private_idx[:50]]
    released, true = defended.predict_proba(x), plain.predict_proba(x)
    np.testing.assert_array_equal(np.argsort(released, axis=1, kind="stable")[:, -1], true.argmax(axis=1))
    np.testing.assert_array_equal(np.argsort(released, 1).argsort(1), np.argsort(true, 1).argsort(1))  # same ranks
    np.testing.assert_allclose(released.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(defended.predict_proba(x), released)  # a repeated query: the same answer
    # The released values are the model's scores on the random inputs, not on the record.
    random_x = defended.state.like(x)
    assert set(np.unique(random_x)) <= {0.0, 1.0} and not np.array_equal(random_x, x)
    np.testing.assert_allclose(np.sort(released, 1), np.sort(plain.predict_proba(random_x), 1))
    toy = rank_preserving_release(np.array([[0.2, 0.7, 0.1]]), np.array([[0.5, 0.3, 0.2]]))
    np.testing.assert_array_equal(toy, [[0.3, 0.5, 0.2]])


def test_selena_labels_each_record_by_sub_models_that_never_saw_it(data, undefended, monkeypatch):
    from miaudit.defenses import selena

    ds, task, test = data
    seen = []
    real = selena.plain_model

    def spy(sub_task, *, indices):
        seen.append(np.array(indices))
        return real(sub_task, indices=indices)

    monkeypatch.setattr(selena, "plain_model", spy)
    defended = parse_defense(SELENA[0]).build(task)
    assert len(seen) == 4 and defended.info["K"] == 4
    trained_on = np.array([np.isin(task.private_idx, s) for s in seen]).T  # (n, K)
    assert (trained_on.sum(axis=1) == 2).all()  # each record left out of exactly L = 2 sub-models
    soft = selena.split_ai_soft_labels(np.stack([np.eye(3)[[0, 1]], np.eye(3)[[2, 2]]]), np.array([[True, False], [False, True]]))
    np.testing.assert_array_equal(soft, np.eye(3)[[0, 2]])  # record 0 from sub-model 0 only, record 1 from 1
    three = selena.split_ai_soft_labels(np.stack([np.eye(3)[[0]], np.eye(3)[[1]], np.eye(3)[[1]]]), np.array([[True, True, False]]))
    np.testing.assert_allclose(three, [[0.5, 0.5, 0.0]])  # the mean of the left-out ones' vectors
    _, acc, auc_ = _figures(defended.model, ds, task, test)
    _, base_acc, base_auc = undefended[1]
    majority = np.bincount(ds.y[test]).max() / len(test)
    assert acc >= majority + MARGIN_OVER_MAJORITY and acc >= base_acc - MAX_ACCURACY_DROP, acc
    assert auc_ <= base_auc - SELENA[1], (auc_, base_auc)


def test_same_seed_same_model(data):
    ds, task, test = data
    x = ds.x[test[:40]]
    a, b = (parse_defense("relaxloss").build(task).model.predict_proba(x) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    other = TrainingTask(**{**task.__dict__, "seed": 1})
    assert not np.array_equal(parse_defense("relaxloss").build(other).model.predict_proba(x), a)
    # HAMP's release also repeats: the same seed gives the same model and the same random inputs.
    c, d = (parse_defense("hamp").build(task).model.predict_proba(x) for _ in range(2))
    np.testing.assert_array_equal(c, d)
