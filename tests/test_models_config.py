"""TrainingRecipe and ArchConfig validation, hashing and JSON round trips."""

from __future__ import annotations

import json
import math

import pytest
import torch

from miaudit.errors import ConfigError, UnknownNameError
from miaudit.models import ArchConfig, TrainingRecipe, build_module, learning_rate, new_model


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "adagrad"}, "unknown optimizer 'adagrad'; choose one of: adam, sgd"),
        ({"schedule": "linear"}, "choose one of: constant, cosine, step"),
        ({"schedule": "step"}, "the step schedule needs milestones"),
        ({"schedule": "step", "milestones": (150, 100)}, "milestones must be strictly increasing epochs >= 1"),
        ({"schedule": "step", "milestones": (0,)}, "milestones must be strictly increasing epochs >= 1"),
        ({"schedule": "step", "milestones": (1.5,)}, "milestones must be strictly increasing epochs >= 1"),
        ({"schedule": "step", "milestones": 150}, "milestones must be strictly increasing epochs >= 1"),
        ({"schedule": "step", "milestones": (150,), "gamma": 0.0}, "gamma must be > 0"),
        ({"schedule": "step", "milestones": (150,), "gamma": float("inf")}, "gamma must be a finite number"),
        ({"milestones": (150,)}, "milestones applies to the step schedule only, not to schedule 'constant'"),
        ({"schedule": "cosine", "gamma": 0.5}, "gamma applies to the step schedule only, not to schedule 'cosine'"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"lr": "0.1"}, "lr must be a finite number"),
        ({"momentum": 1.0}, "momentum must be < 1"),
        ({"momentum": -0.1}, "momentum must be >= 0"),
        ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"epochs": 2.5}, "epochs must be a positive integer"),
        ({"batch_size": True}, "batch_size must be a positive integer"),
    ],
)
def test_recipe_validation(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TrainingRecipe(**changes)


def test_recipe_round_trips_through_json() -> None:
    recipe = TrainingRecipe(optimizer="sgd", lr=0.1, epochs=5, schedule="cosine")
    assert TrainingRecipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainingRecipe.from_dict({"learning_rate": 0.1})


def test_step_schedule_recipe_round_trips_and_keeps_other_recipes_unchanged() -> None:
    recipe = TrainingRecipe(optimizer="sgd", lr=0.01, momentum=0, epochs=200, schedule="step", milestones=[150], gamma=0.1)
    assert recipe.milestones == (150,) and isinstance(recipe.gamma, float) and recipe.momentum == 0.0
    d = recipe.to_dict()
    assert d["schedule"] == "step" and d["milestones"] == [150] and d["gamma"] == 0.1
    assert TrainingRecipe.from_dict(json.loads(json.dumps(d))) == recipe
    assert hash(TrainingRecipe.from_dict(json.loads(json.dumps(d)))) == hash(recipe)
    assert recipe.schedule_params() == {"milestones": (150,), "gamma": 0.1}
    # Other schedules neither take nor write the step parameters: their dicts (and cache keys) are unchanged.
    for schedule in ("constant", "cosine"):
        plain = TrainingRecipe(schedule=schedule)
        assert set(plain.to_dict()) == {"optimizer", "lr", "momentum", "weight_decay", "epochs", "batch_size", "schedule"}
        assert plain.schedule_params() == {}


def test_learning_rate_per_schedule() -> None:
    step = TrainingRecipe(optimizer="sgd", lr=0.01, epochs=200, schedule="step", milestones=(150,), gamma=0.1)
    assert [learning_rate(step, e) for e in (0, 149)] == [0.01, 0.01]
    assert learning_rate(step, 150) == pytest.approx(0.001, rel=1e-12)
    assert learning_rate(step, 199) == pytest.approx(0.001, rel=1e-12)
    two = TrainingRecipe(lr=1.0, epochs=10, schedule="step", milestones=(2, 5), gamma=0.5)
    assert [learning_rate(two, e) for e in range(7)] == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    # Milestones past the last epoch never apply (quick runs with fewer epochs).
    short = TrainingRecipe(lr=0.01, epochs=2, schedule="step", milestones=(150,))
    assert [learning_rate(short, e) for e in range(2)] == [0.01, 0.01]
    assert learning_rate(TrainingRecipe(lr=0.1, epochs=4, schedule="cosine"), 2) == pytest.approx(0.05)
    assert learning_rate(TrainingRecipe(lr=0.1), 7) == 0.1


def test_mlp_init_option() -> None:
    # "torch" is the default and is left out of the resolved form: existing configs and cache keys are unchanged.
    assert ArchConfig.of("mlp", init="torch").resolved() == ArchConfig("mlp").resolved()
    assert "init" not in ArchConfig("mlp").resolved().option_dict()
    glorot = ArchConfig.of("mlp", hidden=(64, 32), activation="relu", init="glorot_uniform")
    assert glorot.resolved().option_dict()["init"] == "glorot_uniform"
    assert glorot.resolved() != ArchConfig.of("mlp", hidden=(64, 32), activation="relu").resolved()
    assert ArchConfig.from_dict(json.loads(json.dumps(glorot.resolved().to_dict()))) == glorot.resolved()
    with pytest.raises(UnknownNameError, match="glorot_uniform, torch"):
        ArchConfig.of("mlp", init="he_normal").resolved()
    with pytest.raises(ConfigError, match="known options: activation, hidden, init"):
        ArchConfig.of("mlp", width=3).resolved()


def test_glorot_uniform_init_draws_the_glorot_range_and_zero_biases() -> None:
    arch = ArchConfig.of("mlp", hidden=(1024, 512, 256, 128), activation="relu", init="glorot_uniform")
    model = new_model(arch, (446,), 30, seed=3)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(446, 1024), (1024, 512), (512, 256), (256, 128), (128, 30)]
    for lin in linears:
        bound = math.sqrt(6.0 / (lin.in_features + lin.out_features))
        w = lin.weight.detach()
        assert float(w.abs().max()) <= bound
        assert float(w.abs().max()) > 0.98 * bound  # fills the range
        assert float(w.std()) == pytest.approx(bound / math.sqrt(3.0), rel=0.05)  # std of U(-a, a)
        assert torch.count_nonzero(lin.bias) == 0
    again = new_model(arch, (446,), 30, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
    # PyTorch's default draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases: never all zero.
    torch_model = new_model(ArchConfig.of("mlp", hidden=(8,)), (6,), 3, seed=3)
    assert all(torch.count_nonzero(m.bias) > 0 for m in torch_model.modules() if isinstance(m, torch.nn.Linear))


def test_arch_config_is_hashable_json_and_resolves_defaults() -> None:
    a = ArchConfig("mlp", {"hidden": [64, 32]})
    b = ArchConfig.of("mlp", hidden=(64, 32))
    assert a == b and hash(a) == hash(b)
    assert ArchConfig.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert ArchConfig("mlp").resolved() == ArchConfig.of("mlp", hidden=(128,), activation="tanh")


def test_arch_validation_and_shapes() -> None:
    with pytest.raises(ConfigError, match="unknown architecture option"):
        ArchConfig.of("mlp", width=3).resolved()
    with pytest.raises(ConfigError, match="positive integers"):
        ArchConfig.of("mlp", hidden=(0,)).resolved()
    with pytest.raises(UnknownNameError, match="tanh"):
        ArchConfig.of("mlp", activation="gelu").resolved()
    with pytest.raises(UnknownNameError, match="cnn, mlp"):
        build_module(ArchConfig("transformer"), (4,), 3)
    for shape in [(1, 8, 8), (1, 28, 28), (3, 32, 32)]:
        cnn = build_module(ArchConfig("cnn"), shape, 10)
        assert cnn(torch.zeros(2, *shape)).shape == (2, 10)
    mlp = build_module(ArchConfig.of("mlp", hidden=(1024, 512, 256, 128)), (600,), 100)
    assert mlp(torch.zeros(2, 600)).shape == (2, 100)
    assert not any(isinstance(m, torch.nn.Softmax) for m in mlp.modules())  # logits, not probabilities
