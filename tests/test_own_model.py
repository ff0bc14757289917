"""Auditing a model trained outside miaudit: TorchScript, ONNX, in-process module, precomputed outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from miaudit.cli import main
from miaudit.data import load_dataset
from miaudit.errors import MiauditError
from miaudit.experiments.own_model import audit_own_model, audit_precomputed
from miaudit.targets.external import (
    OnnxClassifier,
    PrecomputedOutputs,
    TorchModuleClassifier,
    TorchScriptClassifier,
)

ATTACKS = ("correctness", "ml-leaks-3")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A plain PyTorch MLP trained on half of digits (no miaudit training code), exported."""
    data = load_dataset("digits")
    x = data.x.reshape(len(data.x), -1).astype(np.float32)
    y = data.y.astype(np.int64)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(x))[:600]
    members, nonmembers = perm[:300], perm[300:]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, data.num_classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[members]), torch.from_numpy(y[members])
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    model.eval()
    d = tmp_path_factory.mktemp("own")
    ts_path = d / "model.pt"
    torch.jit.save(torch.jit.script(model), str(ts_path))
    onnx_path = d / "model.onnx"
    onnx_error = None
    try:
        torch.onnx.export(
            model, (torch.zeros(1, x.shape[1]),), str(onnx_path), dynamo=False,
            input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
        )  # fmt: skip
    except Exception as exc:  # pragma: no cover - depends on the installed exporter  # noqa: BLE001
        onnx_error = f"{type(exc).__name__}: {exc}"
    idx = np.concatenate([members[:100], nonmembers[:100]])
    is_member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    return {
        "model": model, "num_classes": data.num_classes, "x": x[idx], "y": y[idx], "is_member": is_member,
        "ts": ts_path, "onnx": onnx_path, "onnx_error": onnx_error, "dir": d,
    }  # fmt: skip


def _onnx(trained):
    pytest.importorskip("onnxruntime", reason="ONNX models need onnxruntime")
    if trained["onnx_error"]:
        pytest.skip(f"ONNX export does not work here: {trained['onnx_error']}")
    return OnnxClassifier(trained["onnx"])


def _module(trained):
    return TorchModuleClassifier(trained["model"], trained["num_classes"], trained["x"].shape[1:])


def _audit(classifier, trained):
    threat = "black-box"
    return audit_own_model(
        classifier, trained["x"], trained["y"], trained["is_member"], attacks=ATTACKS, threat_model=threat, n_bootstrap=0
    )


def test_torchscript_and_onnx_logits_match_module(trained):
    ref = _module(trained).predict_logits(trained["x"])
    ts = TorchScriptClassifier(trained["ts"])
    np.testing.assert_allclose(ts.predict_logits(trained["x"]), ref, atol=1e-5)
    assert ts.num_classes == trained["num_classes"]
    np.testing.assert_allclose(_onnx(trained).predict_logits(trained["x"]), ref, atol=1e-5)


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_audits_match_in_process_module(trained, kind):
    clf = TorchScriptClassifier(trained["ts"]) if kind == "torchscript" else _onnx(trained)
    ref = _audit(_module(trained), trained)
    got = _audit(clf, trained)
    assert [o.result.attack for o in got.outcomes] == list(ATTACKS)
    for a, b in zip(ref.outcomes, got.outcomes):
        np.testing.assert_allclose(b.result.scores, a.result.scores, atol=1e-6)
        assert b.metrics.auc == pytest.approx(a.metrics.auc, abs=1e-6)
    # the target overfits its 300 records: correctness sees the generalisation gap
    assert got.member_accuracy > got.nonmember_accuracy


def test_top1_threat_model_and_refusals(trained):
    from miaudit.threat import derive

    top1 = derive("black-box", output="top1")  # a threat model object: nothing registered globally
    ts = TorchScriptClassifier(trained["ts"])
    ref = audit_own_model(_module(trained), trained["x"], trained["y"], trained["is_member"], attacks=ATTACKS,
                          threat_model=top1, n_bootstrap=0)  # fmt: skip
    got = audit_own_model(ts, trained["x"], trained["y"], trained["is_member"], attacks=ATTACKS,
                          threat_model=top1, n_bootstrap=0)  # fmt: skip
    for a, b in zip(ref.outcomes, got.outcomes):
        np.testing.assert_allclose(b.result.scores, a.result.scores, atol=1e-6)
    # gray-box attacks need a pool and a shadow recipe: refused by name, skipped otherwise
    with pytest.raises(MiauditError, match="pool"):
        audit_own_model(ts, trained["x"], trained["y"], trained["is_member"], attacks=["loss"], threat_model="gray-box")
    with pytest.raises(MiauditError, match="shadow model"):
        audit_own_model(ts, trained["x"], trained["y"], trained["is_member"], attacks=["loss"], threat_model="gray-box",
                        pool_x=trained["x"], pool_y=trained["y"])  # fmt: skip
    res = audit_own_model(ts, trained["x"], trained["y"], trained["is_member"], threat_model="label-only", n_bootstrap=0)
    assert "loss" in res.skipped and [o.result.attack for o in res.outcomes] == ["correctness"]


def test_shadow_factory_gray_box(trained):
    from sklearn.linear_model import LogisticRegression

    from miaudit.models.estimators import ESTIMATORS

    x, y = trained["x"], trained["y"]
    data = load_dataset("digits")
    pool_x = data.x.reshape(len(data.x), -1)[-300:].astype(np.float32)
    pool_y = data.y[-300:]
    n_before = len(ESTIMATORS)
    res = audit_own_model(
        TorchScriptClassifier(trained["ts"]), x, y, trained["is_member"], attacks=["loss"], threat_model="gray-box",
        pool_x=pool_x, pool_y=pool_y, shadow_model=lambda seed: LogisticRegression(max_iter=200, random_state=seed),
        n_shadow_models=2, n_bootstrap=0,
    )  # fmt: skip
    assert res.outcome("loss").metrics.threshold_source == "shadow models"
    assert len(ESTIMATORS) == n_before  # the factory was registered only for the audit


def test_precomputed_outputs_match(trained, tmp_path):
    module = _module(trained)
    logits = module.predict_logits(trained["x"])
    path = tmp_path / "outputs.npz"
    np.savez(path, logits=logits, labels=trained["y"], is_member=trained["is_member"])
    res = audit_precomputed(PrecomputedOutputs.load(path), n_bootstrap=0)
    ref = _audit(module, trained)
    np.testing.assert_array_equal(res.outcome("correctness").result.scores, ref.outcome("correctness").result.scores)
    for name in ("loss", "confidence", "entropy", "top-1"):
        assert res.outcome(name).metrics.threshold is None and res.outcome(name).metrics.balanced_accuracy is None
    # ml-leaks-3's score is the top-1 probability
    np.testing.assert_allclose(res.outcome("top-1").result.scores, ref.outcome("ml-leaks-3").result.scores, atol=1e-9)
    # the same as CSV, as probabilities
    proba = module.predict_proba(trained["x"])
    csv_path = tmp_path / "outputs.csv"
    header = ",".join(["label", "is_member", *(f"prob_{i}" for i in range(proba.shape[1]))])
    rows = [",".join([str(int(lab)), str(int(m)), *(repr(float(v)) for v in row)])
            for lab, m, row in zip(trained["y"], trained["is_member"], proba)]  # fmt: skip
    csv_path.write_text(header + "\n" + "\n".join(rows) + "\n")
    res_csv = audit_precomputed(PrecomputedOutputs.load(csv_path), n_bootstrap=0)
    np.testing.assert_allclose(res_csv.outcome("loss").result.scores, res.outcome("loss").result.scores, atol=1e-9)


def _bad_outputs(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"logits": np.zeros((4, 3)), "labels": np.array([0, 1, 2, 3]), "is_member": np.array([1, 0, 1, 0])}, "labels"),
        ({"logits": np.full((4, 3), np.nan), "labels": np.zeros(4, int), "is_member": np.array([1, 0, 1, 0])}, "NaN"),
        ({"probabilities": np.full((4, 3), 0.5), "labels": np.zeros(4, int), "is_member": np.array([1, 0, 1, 0])}, "sum to 1"),
        ({"logits": np.zeros((4, 3)), "labels": np.zeros(3, int), "is_member": np.array([1, 0, 1, 0])}, "shape"),
        ({"logits": np.zeros((4, 3)), "labels": np.zeros(4, int)}, "is_member"),
        ({"logits": np.zeros((4, 3)), "labels": np.zeros(4, int), "is_member": np.ones(4)}, "non-member"),
    ],
)
def test_invalid_outputs_rejected(tmp_path, arrays, match):
    with pytest.raises(MiauditError, match=match):
        PrecomputedOutputs.load(_bad_outputs(tmp_path, **arrays))


def test_corrupt_files_rejected(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(MiauditError, match="TorchScript"):
        TorchScriptClassifier(junk)
    pickled = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(2)}, pickled)  # a torch.save pickle, not TorchScript: refused, not unpickled
    with pytest.raises(MiauditError):
        TorchScriptClassifier(pickled)
    bad_onnx = tmp_path / "junk.onnx"
    bad_onnx.write_bytes(b"\x00garbage")
    pytest.importorskip("onnxruntime")
    with pytest.raises(MiauditError, match="ONNX"):
        OnnxClassifier(bad_onnx)
    obj = tmp_path / "obj.npz"
    np.savez(obj, logits=np.array([object()], dtype=object), labels=np.zeros(1), is_member=np.zeros(1))
    with pytest.raises(MiauditError, match="pickl"):
        PrecomputedOutputs.load(obj)
    with pytest.raises(MiauditError, match="not a .npz"):
        PrecomputedOutputs.load(_rename(junk, ".npz"))


def _rename(path, suffix):
    target = path.with_suffix(suffix)
    target.write_bytes(path.read_bytes())
    return target


def test_cli_audit_model_and_outputs(trained, tmp_path, capsys):
    data = tmp_path / "data.npz"
    np.savez(data, x=trained["x"], y=trained["y"], is_member=trained["is_member"])
    out = tmp_path / "res"
    rc = main(["audit-model", "--model-file", str(trained["ts"]), "--data", str(data), "--attacks", "correctness,ml-leaks-3",
               "--bootstrap", "0", "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0 and (out / "results.json").exists() and (out / "scores.csv").exists()
    outputs = tmp_path / "outputs.npz"
    np.savez(outputs, logits=_module(trained).predict_logits(trained["x"]), labels=trained["y"], is_member=trained["is_member"])
    rc = main(["audit-outputs", str(outputs), "--bootstrap", "0", "--out", str(tmp_path / "res2"), "--quiet"])
    assert rc == 0 and (tmp_path / "res2" / "results.json").exists()
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv_kind",
    ["missing-model", "junk-model", "bad-data", "bad-outputs", "unknown-suffix"],
)
def test_cli_errors_one_line(trained, tmp_path, capsys, argv_kind):
    data = tmp_path / "data.npz"
    np.savez(data, x=trained["x"], y=trained["y"], is_member=trained["is_member"])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    argv = {
        "missing-model": ["audit-model", "--model-file", str(tmp_path / "nope.pt"), "--data", str(data)],
        "junk-model": ["audit-model", "--model-file", str(junk), "--data", str(data)],
        "bad-data": ["audit-model", "--model-file", str(trained["ts"]), "--data", str(_rename(junk, ".npz"))],
        "bad-outputs": ["audit-outputs", str(_bad_outputs(tmp_path, logits=np.zeros((2, 3)), labels=np.zeros(2, int)))],
        "unknown-suffix": ["audit-model", "--model-file", str(_rename(junk, ".pkl")), "--data", str(data)],
    }[argv_kind]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err


def test_skops_estimator_file_loads_without_pickle_and_audits_like_the_estimator(tmp_path):
    skops_io = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression

    from miaudit.data import load_dataset
    from miaudit.targets.external import load_model_file

    data = load_dataset("digits")
    x, y = data.x[:600], data.y[:600]
    estimator = LogisticRegression(max_iter=300).fit(x[:300], y[:300])
    path = tmp_path / "model.skops"
    skops_io.dump(estimator, path)
    loaded = load_model_file(path)
    np.testing.assert_allclose(loaded.predict_proba(x), estimator.predict_proba(x), atol=1e-6)  # via clipped log-probabilities
    is_member = np.arange(600) < 300
    got = audit_own_model(loaded, x, y, is_member, attacks=["correctness"], n_bootstrap=0)
    assert got.outcome("correctness").metrics.auc > 0.5

    hostile = tmp_path / "hostile.skops"
    skops_io.dump({"callback": print}, hostile)  # a builtin function: not a type miaudit trusts
    with pytest.raises(MiauditError):
        load_model_file(hostile)
    (tmp_path / "corrupt.skops").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(MiauditError):
        load_model_file(tmp_path / "corrupt.skops")
