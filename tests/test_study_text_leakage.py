"""`miaudit study text-leakage`: leakage of a fine-tuned GPT against epochs and model size, written like every study."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from miaudit.cli import main
from miaudit.text.corpus import FORTUNES_DIR

pytestmark = pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="the Debian package fortunes is not installed (apt-get install fortunes)")

SMALL = ["--grid", "members=60", "--grid", "pool=60", "--grid", "public=200", "--quiet"]


def test_leakage_grows_with_fine_tuning_epochs(tmp_path):
    out = tmp_path / "study"
    assert main(["study", "text-leakage", "--dataset", "fortunes", "--grid", "epochs=1,12", "--grid", "size=tiny", *SMALL, "--out", str(out)]) == 0
    doc = json.loads((out / "study.json").read_text())
    rows = doc["tables"]["table"]
    assert [(r["size"], r["epochs"]) for r in rows] == [("tiny", 1), ("tiny", 12)]
    assert doc["context"]["dataset"] == "fortunes" and doc["context"]["attacks"] == ["loss", "zlib", "min-k-plus-plus", "reference"]
    # the headline is the verdict's fixed-order choice (the reference LM), never the best on the truth
    assert all(r["headline_attack"] == "reference" for r in rows)
    one, twelve = rows
    # more passes over the members: they get likelier against the non-members, and the attacks see it
    assert twelve["perplexity_ratio"] > one["perplexity_ratio"] + 0.1
    assert twelve["loss_auc"] > one["loss_auc"] + 0.05
    assert doc["findings"]["size_gain"] is None  # one size: no size comparison
    # 60 non-members give 6 expected false positives at 10% FPR, below the 10 a TPR needs: not measurable, never 0
    assert all(r["headline_tpr@10%"] is None or np.isnan(r["headline_tpr@10%"]) for r in rows)
    with open(out / "table.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    image = Image.open(out / "plot.png")
    assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 10


@pytest.mark.parametrize(
    "grid, fragment",
    [("size=huge", "unknown language-model size"), ("colour=red", "no grid setting colour"), ("epochs=0,2", "positive whole numbers")],
)
def test_bad_text_study_settings_are_one_line_errors(capsys, grid, fragment):
    assert main(["study", "text-leakage", "--dataset", "fortunes", "--grid", grid, *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
