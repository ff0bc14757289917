"""Training augmentation (random crop with padding, horizontal flip): the operation's known
answers, train_one and the bank training the same augmented models, the recipe and cache key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from miaudit.errors import ConfigError
from miaudit.models import ArchConfig, ModelBank, TrainingRecipe, train_one
from miaudit.models.augmentation import Draws, apply, augment_generator, draw_epoch

CNN = ArchConfig.of("cnn", channels=(3, 4), hidden=(8,))


def test_crop_and_flip_known_answers():
    img = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4) + 1  # (B, C, H, W), no zeros
    same = apply(img, Draws(torch.tensor([False]), torch.tensor([0]), torch.tensor([0])), 2)
    assert torch.equal(same, img)
    flipped = apply(img, Draws(torch.tensor([True]), torch.tensor([0]), torch.tensor([0])), 2)
    assert torch.equal(flipped, img.flip(-1))
    # shifted down by one (dy = -1): the first row comes from the zero padding, the rest moves down
    down = apply(img, Draws(torch.tensor([False]), torch.tensor([-1]), torch.tensor([0])), 2)
    assert torch.equal(down[..., 0, :], torch.zeros(1, 2, 4)) and torch.equal(down[..., 1:, :], img[..., :-1, :])
    # right by two (dx = 2) and flipped: out[j] = padded[p + dx + (W - 1 - j)]
    both = apply(img, Draws(torch.tensor([True]), torch.tensor([0]), torch.tensor([2])), 2)
    padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
    for j in range(4):
        assert torch.equal(both[..., j], padded[..., 2:5, 2 + 2 + 3 - j])
    # draws: offsets within the padding, flips about half, the same stream from the same seed
    d = draw_epoch(augment_generator(7), 4000, 3)
    assert int(d.dy.min()) == -3 and int(d.dx.max()) == 3 and 0.45 < float(d.flip.float().mean()) < 0.55
    assert torch.equal(d.dx, draw_epoch(augment_generator(7), 4000, 3).dx)
    assert not torch.equal(d.dx, draw_epoch(augment_generator(8), 4000, 3).dx)


@pytest.mark.parametrize("standardize", [False, True])
def test_the_bank_trains_the_augmented_models_train_one_trains(standardize):
    rng = np.random.default_rng(0)
    x = rng.random((120, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 4, 120)
    recipe = TrainingRecipe(lr=1e-2, epochs=3, batch_size=16, augment="flip-crop", crop_padding=2, standardize=standardize)
    subsets = [rng.choice(120, size, replace=False) for size in (60, 47, 5)]  # unequal: short batches, a tiny model
    seeds = [11, 12, 13]
    models = ModelBank(CNN, recipe, num_classes=4).train(x, y, subsets, seeds)
    plain = train_one(CNN, TrainingRecipe(lr=1e-2, epochs=3, batch_size=16, standardize=standardize), x[subsets[0]],
                      y[subsets[0]], num_classes=4, seed=11)  # fmt: skip
    xt = torch.from_numpy(x)
    for model, subset, seed in zip(models, subsets, seeds, strict=True):
        alone = train_one(CNN, recipe, x[subset], y[subset], num_classes=4, seed=seed)
        with torch.no_grad():
            torch.testing.assert_close(model(xt), alone(xt), rtol=0, atol=1e-5)
    with torch.no_grad():  # and augmentation did change the first model
        assert float((models[0](xt) - plain(xt)).abs().max()) > 1e-3


def test_the_recipe_checks_augmentation_and_keys_it():
    assert "augment" not in TrainingRecipe().to_dict()  # existing cache keys unchanged
    d = TrainingRecipe(augment="flip-crop").to_dict()
    assert d["augment"] == "flip-crop" and d["crop_padding"] == 4
    assert TrainingRecipe.from_dict(d) == TrainingRecipe(augment="flip-crop")
    with pytest.raises(ConfigError, match="unknown training augmentation 'rotate'"):
        TrainingRecipe(augment="rotate")
    with pytest.raises(ConfigError, match="crop_padding applies to augment=flip-crop"):
        TrainingRecipe(crop_padding=2)
    with pytest.raises(ConfigError, match="crop_padding must be a whole number"):
        TrainingRecipe(augment="flip-crop", crop_padding=-1)
    x, y = np.zeros((8, 12), np.float32), np.arange(8) % 2
    with pytest.raises(ConfigError, match="is for images"):
        train_one(CNN, TrainingRecipe(augment="flip-crop"), x, y, num_classes=2, seed=0)
    images = np.zeros((8, 1, 4, 4), np.float32)
    for train in (lambda r: train_one(ArchConfig.of("mlp", hidden=(4,)), r, images, y, num_classes=2, seed=0),
                  lambda r: ModelBank(ArchConfig.of("mlp", hidden=(4,)), r, num_classes=2).train(images, y, [np.arange(8)], [0])):  # fmt: skip
        with pytest.raises(ConfigError, match="needs an image architecture"):
            train(TrainingRecipe(augment="flip-crop", epochs=1))


def test_the_audit_flag_refuses_tabular_data_in_one_line(tmp_path, capsys):
    from miaudit.cli import main

    rc = main(["audit", "--dataset", "digits", "--augment", "flip-crop", "--attacks", "loss", "--bootstrap", "0", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "is for images" in err[0] and "Traceback" not in err[0]


def test_lira_queries_the_training_augmentation_by_default():
    from miaudit.attacks.augment import resolve

    name, views = resolve("auto", (3, 8, 8), "flip-crop")  # identity and mirror, as the authors query flip-trained models
    assert name == "flip" and len(views) == 2
    assert resolve("auto", (3, 8, 8), "none")[0] == "none"  # trained without augmentation: the record alone
    assert resolve("auto", (3, 8, 8))[0] == "flip-shift"  # recipe unknown
    assert resolve("auto", (12,), "flip-crop")[0] == "none"
    assert resolve("none", (3, 8, 8), "flip-crop")[0] == "none"  # an explicit choice wins


def test_the_augmenting_engines_are_the_ones_that_say_so():
    from miaudit.models.augmentation import AUGMENTING_ENGINES
    from miaudit.models.engine_base import ENGINES

    assert {name for name in ENGINES.names() if ENGINES.get(name).augments} == set(AUGMENTING_ENGINES)
