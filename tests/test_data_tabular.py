"""Tables as users have them: encoding fitted on the training file, hostile headers, ID columns,
and standardization inside the models trained here."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from miaudit.cli.tabular_flags import add_tabular_flags, tabular_options
from miaudit.data.baselines import majority_class_rate
from miaudit.data.tabular import TabularOptions, load_tabular, load_tabular_splits
from miaudit.data.user import load_user_data
from miaudit.errors import ConfigError, DataError


def write(tmp_path, name: str, frame: pd.DataFrame) -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def frames(n: int = 12, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    train = pd.DataFrame({
        "age": rng.normal(40, 10, n).round(1),
        "colour": rng.choice(["red", "green"], n),
        "label": rng.choice(["no", "yes"], n),
    })  # fmt: skip
    test = pd.DataFrame({"age": [30.0, 50.0, 41.0], "colour": ["red", "blue", "green"], "label": ["yes", "no", "no"]})
    return train, test


def test_categorical_encoding_fitted_on_train_and_unknown_category_is_all_zero(tmp_path) -> None:
    train, test = frames()
    out = load_tabular_splits(write(tmp_path, "tr.csv", train), write(tmp_path, "te.csv", test), None,
                              TabularOptions(categorical="auto"))  # fmt: skip
    assert out.feature_names == ("age", "colour=green", "colour=red")  # no 'blue': fitted on train only
    assert out.x_train.dtype == np.float32 and out.y_train.dtype == np.int64
    np.testing.assert_array_equal(out.x_test[:, 1:], [[0, 1], [0, 0], [1, 0]])  # blue -> all zero
    hot = out.preprocessing["one_hot"]["colour"]
    assert hot == {"categories": ["green", "red"], "unknown": {"test": 1}}
    assert out.preprocessing["fitted_on"].endswith("tr.csv")
    assert out.x_pool is None and out.y_pool is None


def test_non_numeric_column_refused_without_categorical(tmp_path) -> None:
    train, test = frames()
    with pytest.raises(DataError, match="colour.*--categorical"):
        load_tabular_splits(write(tmp_path, "tr.csv", train), write(tmp_path, "te.csv", test))


def test_imputation_statistics_come_from_train(tmp_path) -> None:
    train = pd.DataFrame({"a": [1.0, np.nan, 3.0, 5.0], "b": [0.0, 1.0, 0.0, 1.0], "label": [0, 1, 0, 1]})
    test = pd.DataFrame({"a": [np.nan, 100.0], "b": [1.0, 0.0], "label": [1, 0]})
    tr, te = write(tmp_path, "tr.csv", train), write(tmp_path, "te.csv", test)
    with pytest.raises(DataError, match="'a' has 1 row.*--impute"):
        load_tabular_splits(tr, te)
    out = load_tabular_splits(tr, te, None, TabularOptions(impute="mean"))
    assert out.preprocessing["imputation"]["statistics"]["a"] == pytest.approx(3.0)  # train mean, not test's
    assert out.x_train[1, 0] == pytest.approx(3.0) and out.x_test[0, 0] == pytest.approx(3.0)
    assert out.preprocessing["imputation"]["missing"] == {"train": {"a": 1}, "test": {"a": 1}}


def test_duplicate_header_refused(tmp_path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("label,x,label\n0,1.0,a\n1,2.0,b\n")
    with pytest.raises(DataError, match="'label' appear more than once"):
        load_tabular_splits(path, path)
    with pytest.raises(DataError, match="more than once"):
        load_user_data(path)  # the plain reader too


def test_id_column_warns_and_ignore_column_drops_it(tmp_path) -> None:
    train, test = frames(n=20)
    train.insert(0, "patient_id", np.arange(1000, 1020))
    test.insert(0, "patient_id", [1, 2, 3])
    tr, te = write(tmp_path, "tr.csv", train), write(tmp_path, "te.csv", test)
    out = load_tabular_splits(tr, te, None, TabularOptions(categorical="auto"))
    assert len(out.warnings) == 1 and "--ignore-column patient_id" in out.warnings[0]
    assert out.preprocessing["warnings"] == out.warnings and "patient_id" in out.feature_names
    kept = load_tabular_splits(tr, te, tr, TabularOptions(categorical="auto", ignore_columns=("patient_id",)))
    assert kept.warnings == [] and "patient_id" not in kept.feature_names
    assert kept.preprocessing["dropped_columns"] == ["patient_id"]
    assert kept.x_pool is not None and len(kept.x_pool) == 20
    with pytest.raises(ConfigError, match="--ignore-column nope"):
        load_tabular_splits(tr, te, None, TabularOptions(categorical="auto", ignore_columns=("nope",)))


def test_hostile_files(tmp_path) -> None:
    train, test = frames()
    tr, te = write(tmp_path, "tr.csv", train), write(tmp_path, "te.csv", test)
    with pytest.raises(ConfigError, match="no column 'diagnosis' for --label-column"):
        load_tabular_splits(tr, te, None, TabularOptions(label_column="diagnosis", categorical="auto"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_tabular_splits(empty, te)
    other = write(tmp_path, "other.csv", test.rename(columns={"age": "years"}))
    with pytest.raises(DataError, match="lacks age; has extra years"):
        load_tabular_splits(tr, other, None, TabularOptions(categorical="auto"))
    one = write(tmp_path, "one.csv", train.assign(label="yes"))
    with pytest.raises(DataError, match="two classes"):
        load_tabular_splits(one, write(tmp_path, "one_te.csv", test.assign(label="yes")), None,
                            TabularOptions(categorical="auto"))  # fmt: skip


def test_label_encoding_equals_single_file_loader(tmp_path) -> None:
    rng = np.random.default_rng(1)
    whole = pd.DataFrame({"f": rng.normal(size=30), "label": rng.choice(["b", "a", "c"], 30)})
    whole.loc[:9, "label"] = ["b", "a"] * 5  # the test part lacks class c
    out = load_tabular_splits(write(tmp_path, "tr.csv", whole[10:]), write(tmp_path, "te.csv", whole[:10]))
    single = load_user_data(write(tmp_path, "all.csv", pd.concat([whole[10:], whole[:10]])))
    assert out.class_names == single.class_names == ("a", "b", "c")
    np.testing.assert_array_equal(np.concatenate([out.y_train, out.y_test]), single.y)
    np.testing.assert_allclose(np.concatenate([out.x_train, out.x_test]), single.x)
    dataset, info = load_tabular(write(tmp_path, "all.csv", pd.concat([whole[10:], whole[:10]])))
    assert dataset.class_names == single.class_names and info["fitted_on"].endswith("all.csv")


def test_load_user_data_accepts_tabular_options(tmp_path) -> None:
    train, _ = frames()
    data = load_user_data(write(tmp_path, "t.csv", train), categorical="auto")
    assert data.x.shape == (12, 3) and data.class_names == ("no", "yes")


def test_cli_flags_give_options() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label-column")
    add_tabular_flags(parser)
    opts = tabular_options(parser.parse_args(["--label-column", "diagnosis", "--categorical", "--impute", "median",
                                              "--ignore-column", "id", "--ignore-column", "name"]))  # fmt: skip
    assert opts == TabularOptions("diagnosis", "auto", "median", ("id", "name"))
    assert tabular_options(parser.parse_args(["--categorical", "a,b"])).categorical == ("a", "b")
    assert tabular_options(parser.parse_args([])) == TabularOptions()


def test_majority_class_rate() -> None:
    assert majority_class_rate(np.array([0, 1, 1]), np.array([1, 0, 0, 0])) == 0.25


# ----------------------------------------------------------------------------- standardization in the model


def breast_cancer_halves() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    return tuple(train_test_split(x.astype(np.float32), y, test_size=0.5, random_state=0, stratify=y))


def test_standardized_mlp_beats_raw_on_breast_cancer() -> None:
    from miaudit.models import TrainingRecipe, fit_classifier

    xtr, xte, ytr, yte = breast_cancer_halves()
    acc = {}
    for standardize in (False, True):
        recipe = TrainingRecipe(epochs=10, standardize=standardize)
        clf = fit_classifier("mlp", xtr, ytr, num_classes=2, seed=0, recipe=recipe, progress=False)
        acc[standardize] = float((clf.predict(xte) == yte).mean())  # raw test inputs: the model standardizes
    assert acc[True] >= 0.95 and acc[True] > acc[False], acc
    logreg = fit_classifier("logreg", xtr, ytr, num_classes=2, seed=0, recipe=TrainingRecipe(standardize=True))
    assert type(logreg.estimator).__name__ == "Pipeline" and (logreg.predict(xte) == yte).mean() >= 0.95


def test_bank_standardizes_each_model_with_its_own_subset_exactly(tmp_path) -> None:
    import torch

    from miaudit.models import ArchConfig, ModelCache, TrainingRecipe, train_bank
    from miaudit.models.cache import ModelKey
    from miaudit.models.standardize import Standardized, input_stats
    from miaudit.models.train import train_one

    xtr, _, ytr, _ = breast_cancer_halves()
    recipe = TrainingRecipe(epochs=2, batch_size=32, standardize=True)
    assert recipe.to_dict()["standardize"] is True and "standardize" not in TrainingRecipe().to_dict()
    arch = ArchConfig("mlp", {"hidden": (16,)})
    subsets = [np.arange(0, 150), np.arange(100, 280)]
    cache = ModelCache(tmp_path)
    bank = train_bank(arch, recipe, xtr, ytr, subsets, [1, 2], num_classes=2, cache=cache, progress=False)
    for k, sub in enumerate(subsets):
        module = bank.modules[k]
        assert isinstance(module, Standardized)
        np.testing.assert_array_equal(module.mean.numpy(), input_stats(xtr, sub)[0])
        ref = train_one(arch, recipe, xtr[sub], ytr[sub], num_classes=2, seed=[1, 2][k])
        with torch.no_grad():
            np.testing.assert_allclose(module(torch.from_numpy(xtr)).numpy(), ref(torch.from_numpy(xtr)).numpy(), atol=1e-5)
    np.testing.assert_allclose(bank.predict_logits_all(xtr)[1], bank[1].predict_logits(xtr), atol=1e-6)
    reloaded = train_bank(arch, recipe, xtr, ytr, subsets, [1, 2], num_classes=2, cache=cache, progress=False)
    np.testing.assert_array_equal(reloaded[0].predict_logits(xtr), bank[0].predict_logits(xtr))
    keys = [ModelKey.build(arch=arch, recipe=r, seed=1, num_classes=2, input_shape=(30,), data_fingerprint="d",
                           train_indices=subsets[0]) for r in (recipe, TrainingRecipe(epochs=2, batch_size=32))]  # fmt: skip
    assert keys[0].digest != keys[1].digest


def test_standardized_target_saved_and_loaded_as_model_folder(tmp_path) -> None:
    from miaudit.models import TrainingRecipe, fit_classifier
    from miaudit.models.architectures import ArchConfig
    from miaudit.targets.model_dir import load_model_dir, save_model_dir

    xtr, xte, ytr, _ = breast_cancer_halves()
    recipe = TrainingRecipe(epochs=1, standardize=True)
    clf = fit_classifier("mlp", xtr, ytr, num_classes=2, seed=0, recipe=recipe, progress=False)
    save_model_dir(clf, ArchConfig("mlp"), tmp_path / "m", num_classes=2, input_shape=(30,))
    np.testing.assert_array_equal(load_model_dir(tmp_path / "m").predict_logits(xte), clf.predict_logits(xte))
