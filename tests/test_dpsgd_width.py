"""DP-SGD's ``hidden=`` parameter (miaudit.defenses.dpsgd): the width(s) of the model DP-SGD
trains. Checked: bad values fail with a one-line ConfigError; ``default`` trains the task's own
model; a width, ``a/b`` widths and ``linear`` change the trained module and are recorded in the
info. Tiny synthetic data, one epoch and a fixed noise multiplier keep the file to seconds."""

import numpy as np
import pytest
from torch import nn

from miaudit.defenses import TrainingTask, parse_defense
from miaudit.defenses.dpsgd import train_dp
from miaudit.errors import ConfigError
from miaudit.models import TrainingRecipe


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(80, 12)).astype(np.float32)
    y = rng.integers(0, 3, size=80)
    return TrainingTask(
        x=x, y=y, private_idx=np.arange(80), reference_idx=None, num_classes=3, seed=0,
        model="mlp", options={"hidden": (128,), "activation": "tanh"}, recipe=TrainingRecipe(),
    )  # fmt: skip


def _train(task, hidden):
    spec = "dpsgd:epsilon=none,noise_multiplier=1,epochs=1,batch_size=40,accountant=rdp" + (f",hidden={hidden}" if hidden else "")
    return train_dp(task, parse_defense(spec).params)


def _widths(module):
    return [layer.out_features for layer in module.modules() if isinstance(layer, nn.Linear)]


@pytest.mark.parametrize("value", ["0", "-3", "abc", "64/x", "64//32", "true", "1.5", "none", "200000"])
def test_bad_widths_fail_with_one_line(value):
    with pytest.raises(ConfigError) as err:
        parse_defense(f"dpsgd:hidden={value}")
    assert "hidden" in str(err.value) and "\n" not in str(err.value)


def test_default_is_the_tasks_model(task):
    assert parse_defense("dpsgd").params["hidden"] == "default"
    module, info = _train(task, None)
    assert _widths(module) == [128, 3]
    assert info["hidden"] == "default" and info["model_options"]["hidden"] == [128]
    assert info["model_parameters"] == 12 * 128 + 128 + 128 * 3 + 3


@pytest.mark.parametrize(("hidden", "widths", "text"), [("16", [16, 3], "16"), ("8/4", [8, 4, 3], "8/4"), ("linear", [3], "linear")])
def test_width_changes_the_trained_module(task, hidden, widths, text):
    module, info = _train(task, hidden)
    assert _widths(module) == widths
    assert info["hidden"] == text and info["model_options"]["hidden"] == widths[:-1]
    assert info["model_options"]["activation"] == "tanh"  # the task's other options are kept
    assert task.options["hidden"] == (128,)  # the task itself is not changed


def test_the_spec_records_a_changed_width():
    assert parse_defense("dpsgd:hidden=32").spec() == "dpsgd:hidden=32"


def test_pretrain_is_validated_and_needs_reference_records(task):
    with pytest.raises(ConfigError) as err:
        parse_defense("dpsgd:pretrain=members")
    assert "pretrain" in str(err.value) and "\n" not in str(err.value)
    params = parse_defense("dpsgd:epsilon=none,noise_multiplier=1,epochs=1,batch_size=40,accountant=rdp,pretrain=reference").params
    with pytest.raises(ConfigError) as err:
        train_dp(task, params)  # the task holds no reference records
    assert "reference" in str(err.value) and "\n" not in str(err.value)


def test_pretrain_reference_trains_on_the_reference_records_first(task):
    import dataclasses

    members, reference = np.arange(40), np.arange(40, 80)
    with_ref = dataclasses.replace(task, private_idx=members, reference_idx=reference, recipe=TrainingRecipe(epochs=1))
    params = parse_defense("dpsgd:epsilon=none,noise_multiplier=1,epochs=1,batch_size=20,accountant=rdp").params
    plain, info = train_dp(with_ref, params)
    pre, pre_info = train_dp(with_ref, {**params, "pretrain": "reference"})
    assert info["pretrain"] == "none" and info["pretrain_records"] == 0
    assert pre_info["pretrain"] == "reference" and pre_info["pretrain_records"] == 40
    assert pre_info["records"] == 40 and pre_info["epsilon"] == info["epsilon"]  # epsilon covers the members only
    assert not all(np.allclose(a.detach(), b.detach()) for a, b in zip(plain.parameters(), pre.parameters()))
