"""Attack a model served over HTTP (the MLaaS setting): the attacker sees only the API.

Terminal 1:
    miaudit audit --dataset digits --out results/demo --save-target results/demo/model
    miaudit serve results/demo/model --output top3 --port 8000
Terminal 2:
    python examples/attack_http_target.py http://127.0.0.1:8000 results/demo

The second argument is the audit's results folder: its scores.csv holds which digits records
were members, used here only to evaluate the attack (never by the attack itself).
"""

import csv
import sys
from pathlib import Path

import numpy as np

from miaudit.attacks import ATTACKS, AttackerKnowledge, ModelSpec
from miaudit.data import load_dataset
from miaudit.metrics import evaluate
from miaudit.targets.http_target import HttpTarget
from miaudit.threat import OutputAccess, ThreatModel

url, results = sys.argv[1], Path(sys.argv[2])
with open(results / "scores.csv") as f:
    rows = list(csv.DictReader(f))
records = np.array([int(r["record_index"]) for r in rows])
is_member = np.array([r["is_member"] == "1" for r in rows])

data = load_dataset("digits")
target = HttpTarget(url)
threat = ThreatModel("mlaas-top3", OutputAccess.TOP_K, top_k=3)
access = target.access(threat)
knowledge = AttackerKnowledge.under(
    threat, num_classes=10, input_shape=data.feature_shape, seed=1,
    pool_x=None, pool_y=None, pool_fingerprint=None, target_model=ModelSpec("unknown"),
)  # fmt: skip
for name in ("correctness", "ml-leaks-3"):  # label only; top-1 with generated non-members
    result = ATTACKS.get(name)().fit(knowledge).score(access, data.x[records], data.y[records])
    m = evaluate(result.scores, is_member, threshold=result.threshold, threshold_source=result.threshold_source, n_bootstrap=0)
    print(f"{name:12s} AUC {m.auc:.4f}  balanced acc {m.balanced_accuracy:.4f}  queries/record {result.queries_per_record:.2f}")
print(f"{access.queries} queries sent to {target!r}")
