"""The command line, run as a real subprocess."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from miaudit.metrics import auc


def run_cli(*args, env_extra=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "miaudit", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["audit", "--dataset", "no-such-set"], "unknown data set"),
        (["audit", "--dataset", "digits", "--model", "no-such-model"], "unknown"),
        (["audit", "--dataset", "digits", "--attacks", "nope"], "unknown attack"),
        (["audit", "--dataset", "digits", "--threat-model", "purple-box"], "unknown threat model"),
        (["audit", "--dataset", "digits", "--seed", "x"], "invalid int value"),
        (["audit", "--dataset", "digits", "--epochs", "0"], "--epochs"),
        (["audit"], "say what to audit"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(args, fragment):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_digits_audit_writes_results_that_recompute(tmp_path):
    out = tmp_path / "res"
    # three attacks: what is checked here is the written record (every attack together runs in test_serve / test_truth_isolation)
    proc = run_cli("audit", "--dataset", "digits", "--out", str(out), "--epochs", "10", "--bootstrap", "20", "--attacks", "correctness,loss,lira-offline")
    assert proc.returncode == 0, proc.stderr
    assert "correctness" in proc.stdout and "loss" in proc.stdout and "AUC" in proc.stdout
    summary = json.loads((out / "results.json").read_text())
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    truth = np.array([int(r["is_member"]) for r in rows], bool)
    assert truth.sum() == summary["config"]["split"]["target_in"]
    for name in ("correctness", "loss"):
        scores = np.array([float(r[name]) for r in rows])
        assert summary["attacks"][name]["auc"] == pytest.approx(auc(scores, truth), abs=1e-12)


def test_label_only_audit_skips_the_loss_attack_with_a_reason(tmp_path):
    proc = run_cli("audit", "--dataset", "digits", "--threat-model", "label-only", "--json", "--out", str(tmp_path), "--epochs", "3", "--bootstrap", "0")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary["attacks"]) == {"correctness"}
    assert "output" in summary["skipped"]["loss"]


def test_attack_the_threat_model_forbids_is_refused_with_a_reason():
    proc = run_cli("audit", "--dataset", "digits", "--threat-model", "label-only", "--attacks", "loss")
    assert proc.returncode == 2
    assert "not permitted" in proc.stderr and "output" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_attacks_command_lists_requirements():
    proc = run_cli("attacks", "--json")
    rows = {r["attack"]: r for r in json.loads(proc.stdout)}
    assert rows["correctness"]["output"] == "label" and rows["loss"]["training"] == "recipe"


@pytest.mark.slow
def test_location30_correctness_balanced_accuracy_identity(real_data_dir, tmp_path):
    """Done-when: on real Location30 the printed balanced accuracy = 1/2 + (train - test)/2."""
    proc = run_cli("audit", "--dataset", "location30", "--data-dir", str(real_data_dir), "--attacks", "correctness,loss",
                   "--out", str(tmp_path), "--bootstrap", "20")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "results.json").read_text())
    train, test = summary["target"]["train_accuracy"], summary["target"]["test_accuracy"]
    bal = summary["attacks"]["correctness"]["balanced_accuracy"]
    assert bal == pytest.approx(0.5 + (train - test) / 2, abs=1e-12)
    assert train - test > 0.1  # the Location30 MLP overfits; the identity is not vacuous
    row = next(line for line in proc.stdout.splitlines() if line.strip("│ ").startswith("correctness"))
    assert f"{bal:.4f}" in row
    assert f"accuracy on members {train:.4f}, on non-members {test:.4f}" in proc.stdout


def test_datasets_verify_reports_checksums_and_exits_2_on_a_mismatch(tmp_path, real_data_dir):
    ok = run_cli("datasets", "verify", "location30", "--data-dir", str(real_data_dir))
    assert ok.returncode == 0 and "sha256 ok" in ok.stdout, ok.stderr
    bad = tmp_path / "location30"
    bad.mkdir()
    (bad / "dataset_location.tgz").write_bytes(b"not the archive")
    proc = run_cli("datasets", "verify", "location30", "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and "MISMATCH" in proc.stdout and "delete it" in proc.stdout


def test_corrupt_user_file_is_one_line_exit_2(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    proc = run_cli("audit", "--dataset", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
