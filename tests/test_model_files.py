"""Model files trained elsewhere and saved targets: skops files of scikit-learn's own estimators
load under miaudit's type policy (callables and unknown types refused by name), miaudit's
scikit-learn targets save as model folders, and `miaudit serve` serves a folder, a .skops or an
.onnx file through the same app (checked over HTTP against the local model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

skops_io = pytest.importorskip("skops.io")

from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402

from miaudit.cli import main  # noqa: E402
from miaudit.data import load_dataset  # noqa: E402
from miaudit.errors import DataError, InputError, MiauditError  # noqa: E402
from miaudit.targets.external import EstimatorClassifier, load_model_file, load_skops_estimator  # noqa: E402
from miaudit.targets.model_dir import ModelDirError, load_model_dir  # noqa: E402
from miaudit.targets.saving import load_target, save_target  # noqa: E402


class ShiftedLogisticRegression(LogisticRegression):
    """A user's own estimator class: not a type miaudit trusts by default."""


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    x = data.x.reshape(len(data.x), -1)[:400]
    return x, data.y[:400]


ESTIMATORS = {
    "random-forest": lambda: RandomForestClassifier(n_estimators=5, random_state=0),
    "gradient-boosting": lambda: GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0),
    "hist-gradient-boosting": lambda: HistGradientBoostingClassifier(max_iter=5, random_state=0),
    "scaler-logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)),
    "mlp": lambda: MLPClassifier((16,), max_iter=30, random_state=0),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_skops_files_of_sklearn_estimators_load(digits, tmp_path, name):
    x, y = digits
    estimator = ESTIMATORS[name]().fit(x[:300], y[:300])
    path = tmp_path / f"{name}.skops"
    skops_io.dump(estimator, path)
    loaded = load_skops_estimator(path)
    assert loaded.num_classes == 10 and loaded.input_shape == (64,)
    np.testing.assert_array_equal(loaded.classes_, estimator.classes_)
    np.testing.assert_allclose(loaded.predict_proba(x), estimator.predict_proba(x), atol=1e-6)


def test_labels_follow_classes_order_whatever_they_are(digits, tmp_path):
    x, y = digits
    for labels in (np.array(["zero", "one", "two"])[y % 3], np.array([3, 7, 11])[y % 3]):
        estimator = LogisticRegression(max_iter=200).fit(x, labels)
        path = tmp_path / "labels.skops"
        skops_io.dump(estimator, path)
        loaded = load_model_file(path)
        assert isinstance(loaded, EstimatorClassifier) and loaded.num_classes == 3
        assert loaded.class_names == [str(c) for c in estimator.classes_]
        np.testing.assert_allclose(loaded.predict_proba(x), estimator.predict_proba(x), atol=1e-6)
        codes = loaded.encode_labels(labels)
        np.testing.assert_array_equal(loaded.classes_[codes], labels)
        with pytest.raises(InputError, match="not one of"):
            loaded.encode_labels(np.array(["four"]) if labels.dtype.kind == "U" else np.array([4]))


def test_callables_and_unknown_types_are_refused_by_name_unless_trusted(digits, tmp_path):
    x, y = digits
    cases = {
        "function-transformer": make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=200)),
        "custom-class": ShiftedLogisticRegression(max_iter=200),
    }
    for name, estimator in cases.items():
        estimator.fit(x, y)
        path = tmp_path / f"{name}.skops"
        skops_io.dump(estimator, path)
        with pytest.raises(DataError) as info:
            load_skops_estimator(path)
        message = str(info.value)
        assert "\n" not in message and "will not load" in message and "--trusted-type" in message
        refused = message.split("will not load (")[1].split(")")[0].split(", ")
        if name == "function-transformer":
            assert refused == ["numpy.log1p", "sklearn.preprocessing._function_transformer.FunctionTransformer"]
        else:
            assert refused == [f"{ShiftedLogisticRegression.__module__}.ShiftedLogisticRegression"]
        with pytest.raises(DataError):  # trusting only part of the file is not enough
            load_skops_estimator(path, trusted_types=refused[:-1] or ["numpy.log1p"])
        loaded = load_skops_estimator(path, trusted_types=refused)
        np.testing.assert_allclose(loaded.predict_proba(x), estimator.predict_proba(x), atol=1e-6)

    hostile = tmp_path / "hostile.skops"
    skops_io.dump({"callback": print}, hostile)
    with pytest.raises(DataError, match="builtins.print"):
        load_skops_estimator(hostile)
    not_a_classifier = tmp_path / "scaler.skops"
    skops_io.dump(StandardScaler().fit(x), not_a_classifier)
    with pytest.raises(DataError, match="predict_proba"):
        load_skops_estimator(not_a_classifier)


def test_sklearn_and_torch_targets_round_trip_through_model_folders(digits, tmp_path):
    from miaudit.models import ArchConfig, TrainingRecipe, fit_classifier

    x, y = digits
    # trained on classes 0..8 only: the folder keeps class 9's column (probability 0)
    keep = y < 9
    sk = fit_classifier("logreg", x[keep], y[keep], num_classes=10, seed=0)
    folder = save_target(sk, tmp_path / "sk", num_classes=10, input_shape=(64,), class_names=[str(i) for i in range(10)])
    meta = json.loads((folder / "model.json").read_text())
    assert meta["kind"] == "sklearn" and meta["num_classes"] == 10 and meta["input_shape"] == [64]
    assert len(meta["estimator_sha256"]) == 64 and (folder / "model.skops").is_file()
    loaded = load_model_dir(folder)
    np.testing.assert_array_equal(loaded.predict_proba(x), sk.predict_proba(x))
    served = load_target(folder)
    assert served.input_shape == (64,) and served.class_names == tuple(str(i) for i in range(10))

    torch_clf = fit_classifier("mlp", x, y, num_classes=10, seed=0, recipe=TrainingRecipe(epochs=1), options={"hidden": [8]}, progress=False)
    with pytest.raises(MiauditError, match="architecture"):
        save_target(torch_clf, tmp_path / "t", num_classes=10, input_shape=(64,))
    tfolder = save_target(torch_clf, tmp_path / "t", num_classes=10, input_shape=(64,), arch=ArchConfig("mlp", {"hidden": [8]}))
    assert json.loads((tfolder / "model.json").read_text())["kind"] == "torch"
    np.testing.assert_array_equal(load_model_dir(tfolder).predict_proba(x), torch_clf.predict_proba(x))

    external = load_model_file(_dump(LogisticRegression(max_iter=200).fit(x, np.array(["a", "b"])[y % 2]), tmp_path / "ab.skops"))
    efolder = save_target(external, tmp_path / "ab", num_classes=2, input_shape=(8, 8), class_names=external.class_names)
    np.testing.assert_array_equal(load_model_dir(efolder).predict_proba(x.reshape(-1, 8, 8)), external.predict_proba(x))

    damaged = bytearray((folder / "model.skops").read_bytes())
    damaged[-10] ^= 0xFF
    (folder / "model.skops").write_bytes(bytes(damaged))
    with pytest.raises(ModelDirError, match="checksum"):
        load_model_dir(folder)


def _dump(estimator, path):
    skops_io.dump(estimator, path)
    return path


def _onnx_file(tmp_path, n_features, n_classes):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(n_features, 16), torch.nn.ReLU(), torch.nn.Linear(16, n_classes)).eval()
    path = tmp_path / "model.onnx"
    try:
        torch.onnx.export(
            module, (torch.zeros(1, n_features),), str(path), dynamo=False,
            input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
        )  # fmt: skip
    except Exception as exc:  # pragma: no cover - depends on the installed exporter  # noqa: BLE001
        pytest.skip(f"ONNX export does not work here: {type(exc).__name__}: {exc}")
    return path


def test_serve_a_skops_or_onnx_file_over_http(digits, tmp_path, monkeypatch):
    pytest.importorskip("uvicorn")
    from test_serve import serving

    from miaudit.targets.http_target import HttpTarget

    x, y = digits
    files = {
        "skops": _dump(RandomForestClassifier(n_estimators=5, random_state=0).fit(x[:300], y[:300]), tmp_path / "rf.skops"),
        "onnx": _onnx_file(tmp_path, 64, 10),
    }
    apps = []
    from miaudit.targets import server_runtime

    monkeypatch.setattr(server_runtime, "run_server", lambda app, sock, **kwargs: apps.append(app))  # the CLI builds the app; serve it here
    for kind, path in files.items():
        assert main(["serve", str(path), "--output", "full", "--port", "0"]) == 0
        local = load_target(path).classifier
        with serving(apps[-1]) as url:
            target = HttpTarget(url)
            assert target.input_shape == (64,) and target.num_classes == 10
            np.testing.assert_allclose(target.predict_proba(x[:50]), local.predict_proba(x[:50]), rtol=0, atol=1e-12, err_msg=kind)


def test_serve_refuses_torchscript_and_untrusted_files_in_one_line(digits, tmp_path, capsys):
    x, y = digits
    (tmp_path / "m.pt").write_bytes(b"PK")
    custom = _dump(ShiftedLogisticRegression(max_iter=200).fit(x, y), tmp_path / "custom.skops")
    for argv in (
        ["serve", str(tmp_path / "m.pt"), "--output", "full"],
        ["serve", str(custom), "--output", "full"],
        ["serve", str(custom), "--output", "full", "--input-shape", "1,a"],
        ["serve", str(tmp_path / "nowhere"), "--output", "full"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, err
    assert main(["serve", str(custom), "--output", "full", "--trusted-type", "x"]) == 2
    assert "ShiftedLogisticRegression" in capsys.readouterr().err


def test_an_estimator_takes_records_of_any_shape_with_its_feature_count(digits, tmp_path):
    x, y = digits
    loaded = load_model_file(_dump(LogisticRegression(max_iter=200).fit(x, y), tmp_path / "lr.skops"))
    np.testing.assert_array_equal(loaded.predict_proba(x.reshape(-1, 1, 8, 8)), loaded.predict_proba(x))
    with pytest.raises(InputError, match="64 features"):
        loaded.predict_proba(x[:, :63])
