"""Make the README's own-model example: a scikit-learn random forest and its two CSV files.

    python examples/own_model_csv.py results/own-example

writes ``train.csv`` (the forest's 285 training records), ``test.csv`` (284 records it never saw)
and ``rf.skops`` (the fitted forest, saved with skops: no pickle) into the folder. The data is
scikit-learn's breast-cancer set with a ``patient_id`` column, as a hospital's export would have;
the label column is ``diagnosis`` (malignant / benign). Then audit it:

    miaudit audit --model-file results/own-example/rf.skops --train results/own-example/train.csv \
        --test results/own-example/test.csv --label-column diagnosis --ignore-column patient_id \
        --shadow-model same --out results/own-example/audit
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = np.asarray(data.target_names)[frame["diagnosis"]]  # "benign" / "malignant"
    frame.insert(0, "patient_id", np.arange(len(frame)) + 10_000)
    order = np.random.default_rng(0).permutation(len(frame))
    train, test = frame.iloc[order[:285]], frame.iloc[order[285:]]
    train.to_csv(out / "train.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    features = train.drop(columns=["patient_id", "diagnosis"]).to_numpy()
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(features, train["diagnosis"].to_numpy())
    sio.dump(forest, out / "rf.skops")
    print(f"wrote {out / 'train.csv'}, {out / 'test.csv'} and {out / 'rf.skops'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/own-example")
