"""The cause-analysis studies: each writes a table (JSON + CSV) and a plot; their helpers compute
what they claim; bad settings are one-line errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from miaudit.cli import main
from miaudit.data.base import Dataset
from miaudit.studies import STUDIES
from miaudit.studies.feature_variance import within_class_variance
from miaudit.studies.runner import subset
from miaudit.studies.stats import aggregate, correlation

FAST = ["--dataset", "digits", "--shadow-models", "1", "--attacks", "loss,lira-offline", "--quiet"]

CASES = {
    # study: (extra flags, expected table rows)
    "overfitting": (["--model", "mlp", "--records", "400", "--grid", "epochs=1,4", "--grid", "members=50", "--grid", "weight_decay=0.1"], 4),
    "model-type": (["--grid", "models=decision_tree,gaussian_nb"], 2),
    "classes": (["--model", "logreg", "--grid", "classes=2,5"], 2),
    "feature-variance": (["--model", "logreg"], 10),
    "per-record-risk": (["--model", "logreg", "--grid", "top=3"], 3 + 10),
}


def test_every_registered_study_has_a_case():
    # text-leakage runs on a text corpus, not digits: tests/test_study_text_leakage.py
    assert set(STUDIES.names()) == set(CASES) | {"text-leakage"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_study_writes_matching_json_csv_and_plot(tmp_path, name):
    extra, n_rows = CASES[name]
    out = tmp_path / name
    assert main(["study", name, *FAST, *extra, "--out", str(out)]) == 0
    doc = json.loads((out / "study.json").read_text())
    assert doc["study"] == name and doc["claim"] == STUDIES.get(name).claim
    assert doc["context"]["dataset"] == "digits" and doc["context"]["seeds"] == [0]
    rows = doc["tables"]["table"]
    assert len(rows) == n_rows
    with open(out / "table.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == len(rows)
    for row, crow in zip(rows, csv_rows):
        for key, value in row.items():
            if isinstance(value, float):
                assert float(crow[key]) == pytest.approx(value, rel=1e-12)
            elif value is not None:
                assert crow[key] == str(value)
    assert doc["findings"].get("claim_holds") in (True, False, None)
    image = Image.open(out / "plot.png")
    assert image.format == "PNG" and image.width > 500 and np.asarray(image.convert("L")).std() > 10


def test_model_type_measures_each_model_on_the_same_split(tmp_path):
    out = tmp_path / "mt"
    assert main(["study", "model-type", *FAST, "--grid", "models=decision_tree,gaussian_nb", "--out", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads((out / "study.json").read_text())["tables"]["table"]}
    # A fully grown tree fits its members exactly: train accuracy 1 and the largest gap.
    assert rows["decision_tree"]["train_accuracy"] == 1.0
    assert rows["decision_tree"]["members"] == rows["gaussian_nb"]["members"]
    assert rows["decision_tree"]["gap"] > rows["gaussian_nb"]["gap"]


def test_classes_study_holds_the_record_count_fixed(tmp_path):
    out = tmp_path / "cl"
    assert main(["study", "classes", *FAST, "--model", "logreg", "--grid", "classes=2,10", "--out", str(out)]) == 0
    rows = json.loads((out / "study.json").read_text())["tables"]["table"]
    assert {r["records"] for r in rows} == {rows[0]["records"]}
    assert {r["members"] for r in rows} == {rows[0]["members"]}
    assert rows[0]["records"] < 1797 / 2  # two classes of digits hold ~360 records


def test_subset_renumbers_classes_and_refuses_strays():
    ds = Dataset("toy", np.arange(12, dtype=np.float32).reshape(6, 2), np.array([0, 1, 2, 2, 1, 0]), 3, ("a", "b", "c"))
    sub = subset(ds, np.array([2, 3, 4]), classes=[2, 1])
    assert sub.y.tolist() == [0, 0, 1] and sub.num_classes == 2 and sub.class_names == ("c", "b")
    assert sub.fingerprint != ds.fingerprint
    with pytest.raises(ValueError):
        subset(ds, np.array([0, 2]), classes=[2])


def test_within_class_variance_is_the_mean_feature_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)) * np.array([1.0, 2.0, 3.0])
    y = np.repeat([0, 1], 20)
    x[y == 1] *= 0.1
    v = within_class_variance(x, y, 3)
    assert v[0] == pytest.approx(x[y == 0].var(axis=0, ddof=1).mean())
    assert v[1] == pytest.approx(x[y == 1].var(axis=0, ddof=1).mean()) and v[1] < v[0]
    assert np.isnan(v[2])  # no records of class 2


def test_aggregate_and_correlation():
    rows = [{"k": 1, "a": 1.0}, {"k": 1, "a": 3.0}, {"k": 2, "a": 5.0}]
    agg = {r["k"]: r for r in aggregate(rows, ["k"], ["a"])}
    assert agg[1]["a_mean"] == 2.0 and agg[1]["a_std"] == pytest.approx(np.sqrt(2.0)) and agg[2]["a_std"] == 0.0
    up = correlation([1, 2, 3, 4], [1, 3, 2, 10])
    assert up["spearman_rho"] == pytest.approx(0.8) and up["pearson_r"] > 0
    assert correlation([1, 2, 3, 4], [4, 3, 2, 1])["spearman_rho"] == pytest.approx(-1.0)
    assert correlation([1, 1, 1], [1, 2, 3])["spearman_rho"] is None  # constant: undefined


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["study", "no-such-study", "--dataset", "digits"], "unknown study"),
        (["study", "classes", "--dataset", "digits", "--grid", "colour=red"], "no grid setting colour"),
        (["study", "classes", "--dataset", "digits", "--grid", "classes=two"], "comma-separated int"),
        (["study", "classes", "--dataset", "digits", "--grid", "classes=1,99"], "must lie in [2, 10]"),
        (["study", "overfitting", "--dataset", "digits", "--grid", "epochs"], "KEY=V1,V2"),
        (["study", "overfitting"], "--dataset is required"),
        (["study", "model-type", "--dataset", "digits", "--grid", "models=no_such_model"], "unknown model"),
    ],
)
def test_bad_study_settings_are_one_line_errors(capsys, args, fragment):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


@pytest.mark.parametrize("n", [20, 562, 1710, 1711, 5010])
def test_study_split_fits_every_size(n):
    from miaudit.studies.runner import study_split

    counts = study_split(n).resolve(n)  # raises if the parts do not fit
    assert counts["target_in"] == counts["target_out"] == round(n / 4)
    assert sum(counts.values()) in (n, n - 1) and counts["attacker_pool"] >= n // 2 - 1


def test_a_perfect_correlation_counts_as_significant():
    """scipy reports p = 0.0 for rho = 1 on enough points; 0.0 is significant, not missing."""
    from miaudit.studies.stats import positive_and_significant as claim_from

    assert claim_from({"spearman_rho": 1.0, "spearman_p": 0.0}) is True
    assert claim_from({"spearman_rho": 0.4, "spearman_p": 0.2}) is False
    assert claim_from({"spearman_rho": -0.9, "spearman_p": 0.001}) is False
    assert claim_from({"spearman_rho": None, "spearman_p": None}) is None
