"""TrainingRecipe and ArchConfig validation, hashing and JSON round trips."""

from __future__ import annotations

import json

import pytest
import torch

from miaudit.errors import ConfigError, UnknownNameError
from miaudit.models import ArchConfig, TrainingRecipe, build_module


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "adagrad"}, "unknown optimizer 'adagrad'; choose one of: adam, sgd"),
        ({"schedule": "step"}, "choose one of: constant, cosine"),
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
