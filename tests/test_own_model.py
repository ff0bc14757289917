"""Auditing a model trained outside miaudit: TorchScript, ONNX, in-process module, precomputed outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from miaudit.cli import main
from miaudit.data import load_dataset
from miaudit.errors import MiauditError
import miaudit
from miaudit.core.sources import TargetSource
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


def _parts(trained):
    m = trained["is_member"]
    return (trained["x"][m], trained["y"][m]), (trained["x"][~m], trained["y"][~m])


def _audit(model, trained, **kw):
    """The one core on the user's records: members = training part, non-members = the rest."""
    train, test = _parts(trained)
    kw = {"threat_model": "black-box", "attacks": ATTACKS, "n_bootstrap": 0, "pool_share": 0.0, **kw}
    return miaudit.audit(model, train=train, test=test, **kw)


def _same_scores(a, b, atol=1e-6):
    assert list(a.scores) == list(b.scores)
    for name in a.scores:
        np.testing.assert_allclose(b.scores[name], a.scores[name], atol=atol)


def test_torchscript_and_onnx_logits_match_module(trained):
    ref = _module(trained).predict_logits(trained["x"])
    with TorchScriptClassifier(trained["ts"], trust_model_code=True) as ts:  # run in a sandboxed process
        np.testing.assert_allclose(ts.predict_logits(trained["x"]), ref, atol=1e-5)
        assert ts.num_classes == trained["num_classes"]
    np.testing.assert_allclose(_onnx(trained).predict_logits(trained["x"]), ref, atol=1e-5)


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_audits_match_in_process_module(trained, kind):
    if kind == "onnx":
        _onnx(trained)
    ref = _audit(trained["model"], trained)  # a plain torch module: classes inferred from the data
    got = _audit(str(trained["ts" if kind == "torchscript" else "onnx"]), trained, trust_model_code=kind == "torchscript")
    assert list(got.scores) == list(ATTACKS)
    _same_scores(ref, got)
    # the target overfits its 300 records: correctness sees the generalisation gap
    assert got.summary["target"]["train_accuracy"] > got.summary["target"]["test_accuracy"]


def test_top1_threat_model_and_refusals(trained):
    ref = _audit(trained["model"], trained, threat_model="black-box", output="top1")
    got = _audit(str(trained["ts"]), trained, threat_model="black-box", output="top1", trust_model_code=True)
    _same_scores(ref, got)
    # gray-box shadow attacks need a pool and a stand-in model: refused by name, skipped otherwise
    with pytest.raises(MiauditError, match="pool"):
        _audit(str(trained["ts"]), trained, attacks=["shadow-training"], threat_model="gray-box", trust_model_code=True)
    with pytest.raises(MiauditError, match="standing in"):
        _audit(str(trained["ts"]), trained, attacks=["shadow-training"], threat_model="gray-box", pool_share=0.5, trust_model_code=True)
    res = _audit(str(trained["ts"]), trained, attacks=None, threat_model="label-only", trust_model_code=True)
    assert "loss" in res.summary["skipped"] and list(res.scores) == ["correctness"]


def test_callable_stand_in_gray_box(trained):
    from sklearn.linear_model import LogisticRegression

    from miaudit.models.estimators import ESTIMATORS

    data = load_dataset("digits")
    pool = (data.x.reshape(len(data.x), -1)[-300:].astype(np.float32), data.y[-300:])
    n_before = len(ESTIMATORS.names())
    res = _audit(
        str(trained["ts"]), trained, attacks=["loss"], threat_model="gray-box", pool=pool,
        shadow_model=lambda x, y, seed: LogisticRegression(max_iter=200, random_state=seed).fit(x, y),
        n_shadow_models=2, trust_model_code=True,
    )  # fmt: skip
    assert res.attacks["loss"]["threshold_source"] == "shadow models" and res.attacks["loss"]["calibrated"]
    assert len(ESTIMATORS.names()) == n_before  # the stand-in was registered only for the audit


def test_precomputed_outputs_match(trained, tmp_path):
    module = _module(trained)
    logits = module.predict_logits(trained["x"])
    path = tmp_path / "outputs.npz"
    np.savez(path, logits=logits, labels=trained["y"], is_member=trained["is_member"])
    res = miaudit.run_audit(miaudit.AuditConfig(dataset="o", n_bootstrap=0, target=TargetSource("outputs", PrecomputedOutputs.load(path))), progress=False).record()
    ref = _audit(trained["model"], trained, attacks=("correctness", "loss", "confidence"), threat_model="black-box")
    # same records, different order: compare per record (outputs rows are record indices)
    order = np.argsort(res.record_indices)
    np.testing.assert_array_equal(res.scores["correctness"][order], module.predict_logits(trained["x"]).argmax(1) == trained["y"])
    for name in ("loss", "confidence", "entropy"):
        assert res.attacks[name]["threshold"] is None and not res.attacks[name]["calibrated"]
    # uncalibrated loss is log p_y of the precomputed outputs
    p_y = module.predict_proba(trained["x"])[np.arange(len(trained["y"])), trained["y"]]
    np.testing.assert_allclose(res.scores["loss"][order], np.log(p_y), atol=1e-9)
    assert ref.summary["kind"] == "object" and res.summary["kind"] == "outputs"
    # the same as CSV, as probabilities
    proba = module.predict_proba(trained["x"])
    csv_path = tmp_path / "outputs.csv"
    header = ",".join(["label", "is_member", *(f"prob_{i}" for i in range(proba.shape[1]))])
    rows = [",".join([str(int(lab)), str(int(m)), *(repr(float(v)) for v in row)])
            for lab, m, row in zip(trained["y"], trained["is_member"], proba)]  # fmt: skip
    csv_path.write_text(header + "\n" + "\n".join(rows) + "\n")
    res_csv = miaudit.run_audit(miaudit.AuditConfig(dataset="o", n_bootstrap=0, target=TargetSource("outputs", PrecomputedOutputs.load(csv_path))), progress=False).record()
    np.testing.assert_allclose(res_csv.scores["loss"], res.scores["loss"], atol=1e-9)


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
    with pytest.raises(MiauditError, match="trust-model-code"):  # a program: refused before it is read
        TorchScriptClassifier(junk)
    with pytest.raises(MiauditError, match="TorchScript"):
        TorchScriptClassifier(junk, trust_model_code=True)
    pickled = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(2)}, pickled)  # a torch.save pickle, not TorchScript: refused, not unpickled
    with pytest.raises(MiauditError, match="cannot load"):  # loaded (and refused) in the sandboxed process only
        TorchScriptClassifier(pickled, trust_model_code=True)
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
               "--bootstrap", "0", "--out", str(out), "--quiet", "--trust-model-code"])  # fmt: skip
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
        "bad-data": ["audit-model", "--model-file", str(trained["ts"]), "--data", str(_rename(junk, ".npz")), "--trust-model-code"],
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
    got = miaudit.audit(str(path), train=(x[:300], y[:300]), test=(x[300:], y[300:]), attacks=["correctness"],
                        threat_model="black-box", n_bootstrap=0, pool_share=0.0)  # fmt: skip
    assert got.attacks["correctness"]["auc"] > 0.5

    hostile = tmp_path / "hostile.skops"
    skops_io.dump({"callback": print}, hostile)  # a builtin function: not a type miaudit trusts
    with pytest.raises(MiauditError):
        load_model_file(hostile)
    (tmp_path / "corrupt.skops").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(MiauditError):
        load_model_file(tmp_path / "corrupt.skops")
