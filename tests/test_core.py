"""The one audit core: every target source through one pipeline, one record, one verdict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import miaudit
from miaudit.cli import main
from miaudit.core.sources import TargetSource
from miaudit.data import load_dataset
from miaudit.experiments import AuditConfig, run_audit
from miaudit.targets.external import PrecomputedOutputs

SCORED_BOTH_WAYS = ("correctness", "loss", "confidence", "shadow-training", "lira-offline", "lira", "rmia", "rmia-offline", "attack-r")


def test_own_model_path_gives_the_trained_here_scores_exactly():
    """The same trained target audited as 'trained here' and as a user's object on the same
    records (train = its members, test = its held-out set, pool = the attacker's pool) gives
    identical scores for every attack, online LiRA and RMIA included."""
    here = run_audit(
        AuditConfig(dataset="digits", model="logreg", attacks=SCORED_BOTH_WAYS, n_shadow_models=4, n_bootstrap=0),
        progress=False,
    )
    d, s = here.dataset, here.split
    own = miaudit.audit(
        here.target, train=(d.x[s.target_in], d.y[s.target_in]), test=(d.x[s.target_out], d.y[s.target_out]),
        pool=(d.x[s.attacker_pool], d.y[s.attacker_pool]), shadow_model="logreg", attacks=SCORED_BOTH_WAYS,
        n_shadow_models=4, n_bootstrap=0,
    )  # fmt: skip
    rec = here.record()
    assert list(own.scores) == list(rec.scores) == list(SCORED_BOTH_WAYS)
    np.testing.assert_array_equal(own.is_member, rec.is_member)
    for name in SCORED_BOTH_WAYS:
        np.testing.assert_array_equal(own.scores[name], rec.scores[name], err_msg=name)
    assert own.summary["kind"] == "object" and rec.summary["kind"] == "trained"


def _breast_cancer_files(tmp_path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"})
    frame.insert(0, "patient_id", np.arange(len(frame)) + 1000)
    order = np.random.default_rng(0).permutation(len(frame))
    train, test = frame.iloc[order[:200]], frame.iloc[order[200:]]
    train.to_csv(tmp_path / "tr.csv", index=False)
    test.to_csv(tmp_path / "te.csv", index=False)
    return train.drop(columns=["patient_id", "label"]).to_numpy(), train["label"].to_numpy()


def test_cli_audits_a_random_forest_skops_file_from_two_csv_files(tmp_path, capsys):
    skops_io = pytest.importorskip("skops.io")
    from sklearn.ensemble import RandomForestClassifier

    x, y = _breast_cancer_files(tmp_path)
    skops_io.dump(RandomForestClassifier(n_estimators=30, random_state=0).fit(x, y), tmp_path / "rf.skops")
    out = tmp_path / "D"
    rc = main([
        "audit", "--model-file", str(tmp_path / "rf.skops"), "--train", str(tmp_path / "tr.csv"), "--test", str(tmp_path / "te.csv"),
        "--label-column", "label", "--ignore-column", "patient_id", "--shadow-model", "same", "--out", str(out),
        "--bootstrap", "20", "--save-target", str(tmp_path / "saved"),
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    results = json.loads((out / "results.json").read_text())
    assert {"loss", "lira", "rmia", "shadow-training", "lira-offline", "rmia-offline", "label-boundary"} <= set(results["attacks"])
    assert set(results["skipped"]) == {"nsh"}  # white box: a skops file has no gradients
    assert results["target"]["stand_in"].startswith("a clone of the target's RandomForestClassifier")
    assert results["dataset"]["preprocessing"]["dropped_columns"] == ["patient_id"]
    html = (out / "report.html").read_text()
    assert f'data-level="{results["verdict"]["level"]}"' in html and results["verdict"]["headline_attack"] in html
    assert f"verdict: {results['verdict']['level']}" in printed
    assert (tmp_path / "saved" / "model.skops").is_file()  # a scikit-learn target saved for `miaudit serve`
    rec = miaudit.read(out)
    assert isinstance(rec.table(), pd.DataFrame) and set(rec.table()["attack"]) == set(results["attacks"])
    assert main(["report", str(out)]) == 0


def test_onnx_file_and_torch_module_through_the_python_api(tmp_path):
    pytest.importorskip("onnxruntime")
    import torch
    from torch import nn

    data = load_dataset("digits")
    x, y = data.x.reshape(len(data.x), -1).astype(np.float32)[:900], data.y[:900]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.from_numpy(x[:300])), torch.from_numpy(y[:300])).backward()
        opt.step()
    model.eval()
    parts = {"train": (x[:300], y[:300]), "test": (x[300:600], y[300:600]), "pool": (x[600:], y[600:])}
    attacks = ("loss", "lira", "rmia", "shadow-training")
    recipe = {"epochs": 15, "lr": 1e-2}
    by_module = miaudit.audit(model, **parts, shadow_model="same", shadow_recipe=recipe, attacks=attacks, n_bootstrap=0)
    assert list(by_module.scores) == list(attacks) and by_module.verdict is not None
    assert "re-initialised" in by_module.summary["target"]["stand_in"]
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 64),), str(onnx_path), dynamo=False, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})  # fmt: skip
    by_onnx = miaudit.audit(str(onnx_path), **parts, shadow_model="mlp", attacks=("loss", "lira", "rmia"), n_bootstrap=0)
    # the same model: its own scores (loss = log p_y) agree whichever way it is handed in
    np.testing.assert_allclose(by_onnx.scores["loss"], by_module.scores["loss"], atol=1e-5)
    paths = by_onnx.write(tmp_path / "onnx-audit")
    assert paths["report"].is_file() and miaudit.read(tmp_path / "onnx-audit").verdict == by_onnx.verdict


def _outputs_audit(outputs, **kw):
    config = AuditConfig(dataset="outputs", n_bootstrap=0, target=TargetSource("outputs", outputs), **kw)
    return run_audit(config, progress=False).record()


def _null_outputs(rng, n, classes=10):
    proba = rng.dirichlet(np.ones(classes), n)
    return PrecomputedOutputs(labels=rng.integers(0, classes, n), is_member=rng.permutation(np.arange(n) < n // 2), probabilities=proba)


def test_null_targets_rarely_leak_and_memorising_targets_always_do():
    """Over 80 audits of targets whose outputs are independent of membership, the verdict says
    'leaks' in at most 5% plus the binomial tolerance; a memorising target leaks every time.
    (``tools/null_verdicts.py 200 600`` runs 200 for the README's figure.)"""
    rng = np.random.default_rng(1234)
    n_audits, leaks = 80, 0
    for _ in range(n_audits):
        leaks += _outputs_audit(_null_outputs(rng, 600)).verdict.leaks
    tolerance = 3 * np.sqrt(0.05 * 0.95 / n_audits)
    assert leaks / n_audits <= 0.05 + tolerance, f"{leaks}/{n_audits} null audits declared leaking"
    for _ in range(10):
        n, classes = 600, 10
        labels = rng.integers(0, classes, n)
        member = rng.permutation(np.arange(n) < n // 2)
        proba = rng.dirichlet(np.ones(classes), n)
        proba[member] = 0.02 / (classes - 1)
        proba[member, labels[member]] = 0.98
        verdict = _outputs_audit(PrecomputedOutputs(labels=labels, is_member=member, probabilities=proba)).verdict
        assert verdict.leaks and verdict.level == "high"


def test_small_audits_are_undetermined_never_no_leakage():
    rng = np.random.default_rng(7)
    for _ in range(5):
        verdict = _outputs_audit(_null_outputs(rng, 60)).verdict
        assert verdict.level == "undetermined" and verdict.records_needed > 60


def test_fail_on_leak_is_a_ci_gate(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 400
    labels, member = rng.integers(0, 5, n), np.arange(n) % 2 == 0
    proba = rng.dirichlet(np.ones(5), n)
    proba[member] = 0.01
    proba[member, labels[member]] = 0.96
    np.savez(tmp_path / "leaky.npz", probabilities=proba, labels=labels, is_member=member)
    argv = ["audit", "--outputs", str(tmp_path / "leaky.npz"), "--bootstrap", "0", "--quiet", "--out", str(tmp_path / "o")]
    assert main([*argv, "--fail-on-leak", "medium"]) == 1
    assert main(argv) == 0
    assert main([*argv, "--fail-on-leak", "severe"]) == 2  # unknown level: one-line error
    capsys.readouterr()


def test_report_works_on_every_kind_of_audit_folder(tmp_path, capsys):
    rng = np.random.default_rng(5)
    outputs = _null_outputs(rng, 300)
    np.savez(tmp_path / "o.npz", probabilities=outputs.probabilities, labels=outputs.labels, is_member=outputs.is_member)
    assert main(["audit-outputs", str(tmp_path / "o.npz"), "--bootstrap", "0", "--quiet", "--out", str(tmp_path / "a")]) == 0
    assert main(["audit", "--dataset", "digits", "--model", "logreg", "--attacks", "loss,correctness", "--bootstrap", "0",
                 "--quiet", "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    for folder in ("a", "b"):
        (tmp_path / folder / "report.html").unlink()
        assert main(["report", str(tmp_path / folder)]) == 0
        doc = json.loads((tmp_path / folder / "results.json").read_text())
        assert doc["schema"] == "miaudit.audit-record" and doc["schema_version"] == 2 and doc["verdict"]["level"]
        assert isinstance(miaudit.read(tmp_path / folder).table(), pd.DataFrame)
    capsys.readouterr()


def test_a_constant_predictor_is_flagged():
    from sklearn.dummy import DummyClassifier

    data = load_dataset("digits")
    x, y = data.x.reshape(len(data.x), -1), data.y
    dummy = DummyClassifier(strategy="most_frequent").fit(x[:400], y[:400])
    rec = miaudit.audit(dummy, train=(x[:400], y[:400]), test=(x[400:800], y[400:800]), attacks=["correctness"],
                        threat_model="black-box", n_bootstrap=0)  # fmt: skip
    assert any("majority-class rate" in w for w in rec.warnings)


def test_public_api_has_docstrings():
    for name in miaudit.__all__:
        obj = getattr(miaudit, name)
        assert name.startswith("__") or (getattr(obj, "__doc__", None) or "").strip(), name


def test_files_are_written_with_the_users_umask(tmp_path):
    import os

    from miaudit.io_utils import atomic_path

    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "f.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o640
