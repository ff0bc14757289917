"""The adaptive attacker at full strength and the honest trade-off table (issue 15).

Defended shadow and reference models are the target's size, their reference data disjoint from
their training subset; the defend table's headline attack is chosen without the target's truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from miaudit.attacks.defended_plan import defended_plan, plan_sizes
from miaudit.attacks.knowledge import AttackerKnowledge, ModelSpec
from miaudit.attacks.reference_models import train_online_references
from miaudit.attacks.shadow_models import train_shadow_models
from miaudit.defenses import Defense
from miaudit.models import TrainingRecipe
from miaudit.threat import THREAT_MODELS
from test_train_models import _NeedsReference as _Recording  # records every task it is handed

MLP = {"hidden": [8], "activation": "relu"}
RECIPE = TrainingRecipe(epochs=1, batch_size=32)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 5), dtype=np.float32), rng.integers(0, 3, n)


def _knowledge(defense: Defense, train_size: int, reference_size: int, n_pool: int = 160) -> AttackerKnowledge:
    pool_x, pool_y = _data(n_pool, 0)
    spec = ModelSpec("mlp", MLP, RECIPE, defense, train_size=train_size, reference_size=reference_size)
    return AttackerKnowledge.under(
        THREAT_MODELS.get("gray-box"), num_classes=3, input_shape=(5,), seed=3, pool_x=pool_x, pool_y=pool_y,
        pool_fingerprint="pool", target_model=spec, n_shadow_models=4,
    )  # fmt: skip


def test_gray_box_knowledge_keeps_the_target_sizes():
    k = _knowledge(_Recording(), 50, 40)
    assert (k.model.train_size, k.model.reference_size) == (50, 40)


def test_defended_shadows_are_the_targets_size_with_disjoint_reference_data():
    defense = _Recording()
    shadows = train_shadow_models(_knowledge(defense, 50, 40), 4)
    assert len(defense.tasks) == 4
    for task, shadow in zip(defense.tasks, shadows):
        private, reference = task.private_idx, task.reference_idx
        assert len(private) == 50 and len(reference) == 40  # what the defense was handed
        assert not np.intersect1d(private, reference).size
        np.testing.assert_array_equal(shadow.in_idx, private)
        np.testing.assert_array_equal(shadow.reference_idx, reference)
        assert not np.intersect1d(shadow.out_idx, np.union1d(private, reference)).size
        assert len(shadow.out_idx) == 160 - 50 - 40
    # a pair shares its reference set and trains on disjoint halves of the rest
    assert not np.intersect1d(defense.tasks[0].private_idx, defense.tasks[1].private_idx).size


def test_a_pool_too_small_scales_both_sizes_and_says_so():
    train, ref, note = plan_sizes(160, 160, 80, 80)
    assert (train, ref) == (53, 53) and "cannot hold" in note
    assert plan_sizes(240, 240, 80, 80) == (80, 80, None)
    defense = _Recording()
    train_shadow_models(_knowledge(defense, 80, 80), 2)
    assert [len(t.private_idx) for t in defense.tasks] == [53, 53] and [len(t.reference_idx) for t in defense.tasks] == [53, 53]


def test_online_references_are_target_size_and_reference_data_comes_from_the_pool():
    defense = _Recording()
    knowledge = _knowledge(defense, 50, 40)
    x, y = _data(40, 1)
    refs = train_online_references(knowledge, x, y, 4)
    n_pool = len(knowledge.pool_y)
    for task in defense.tasks:
        assert len(task.private_idx) == 50 and len(task.reference_idx) == 40
        assert task.reference_idx.max() < n_pool  # never a candidate
        assert not np.intersect1d(task.private_idx, task.reference_idx).size
        assert np.isin(np.arange(n_pool, n_pool + 40), task.private_idx).sum() == 20  # candidates first: half of them
    np.testing.assert_array_equal(refs.in_candidates.sum(axis=0), 2)  # every candidate IN for one model of each pair
    np.testing.assert_array_equal(refs.out_candidates, ~refs.in_candidates)


def test_plan_without_reference_data_and_unknown_size_fall_back():
    plan = defended_plan(100, 3, train_size=30, reference_size=0, seed=0)
    assert plan.references is None and [len(s) for s in plan.subsets] == [30, 30, 30]
    spec = ModelSpec("mlp", MLP, RECIPE, _Recording())  # no size known: the paired-halves fallback
    from miaudit.attacks.shadow_models import adaptive_plan

    assert adaptive_plan(spec, 100, 2, seed=0) is None


def _fake_result(seed: int, scores: dict[str, np.ndarray], is_member: np.ndarray, test_accuracy: float):
    """An AuditResult-shaped object carrying only what the table reads."""
    from types import SimpleNamespace

    from miaudit import metrics
    from miaudit.attacks.base import AttackResult
    from miaudit.experiments.audit import AttackOutcome

    outcomes = [AttackOutcome(AttackResult(n, s), metrics.evaluate(s, is_member, n_bootstrap=0)) for n, s in scores.items()]
    return SimpleNamespace(
        config=SimpleNamespace(seed=seed), outcomes=outcomes, is_member=is_member, train_accuracy=1.0,
        test_accuracy=test_accuracy, defense=None, skipped={}, notes=(),
    )  # fmt: skip


def _scores(seed: int, n: int = 2000):
    rng = np.random.default_rng(seed)
    m = np.zeros(n, bool)
    m[: n // 2] = True
    return m, {
        "correctness": m * 2.0 + rng.normal(size=n),  # the strongest on the truth, last in the fixed order
        "loss": m * 0.3 + rng.normal(size=n),  # the headline: before correctness in HEADLINE_ORDER
        "confidence": m * -0.5 + rng.normal(size=n),  # inverted
    }


def test_the_headline_is_the_verdicts_fixed_choice_and_the_maximum_is_an_upper_bound(tmp_path):
    from miaudit.experiments.defend_rows import INVERTED_FLAG, seed_row, summarise

    runs = []
    for seed in (0, 1):
        m, s = _scores(seed)
        runs.append(seed_row(_fake_result(seed, s, m, 0.6 + seed / 100), n_bootstrap=50))
    assert all(r["headline"]["attack"] == "loss" for r in runs)  # not correctness, which wins on the truth
    assert all(r["upper_bound"]["auc"]["attack"] == "correctness" for r in runs)
    assert all(r["attacks"]["confidence"]["inverted"] and not r["attacks"]["loss"]["inverted"] for r in runs)
    for r in runs:
        low, high = r["headline"]["auc_ci"]
        assert low < r["headline"]["auc"] < high and r["headline"]["tpr_at_1pct_fpr_ci"] is not None
    row = summarise("none", {"stage": "training", "paper": "-"}, runs)
    assert row["headline_attack"] == "loss" and row["upper_bound_auc_attack"] == "correctness"
    assert row["headline_auc"] < row["upper_bound_auc"] and row["headline_auc_std"] is not None
    assert row["flag"] is None and row["per_attack"]["confidence"]["inverted"]
    assert row["verdicts"] == [r["verdict"]["level"] for r in runs] and len(row["headline_auc_ci"]) == 2

    m, s = _scores(2)
    inverted = seed_row(_fake_result(2, {"loss": s["confidence"]}, m, 0.5), n_bootstrap=0)
    row = summarise("x", {"stage": "output", "paper": "-"}, [inverted])
    assert row["flag"].startswith(INVERTED_FLAG) and row["headline_auc_ci"] == [None]


def test_report_of_a_defend_folder_shows_the_table_and_the_plot(tmp_path):
    from miaudit.cli import main
    from miaudit.data.split import SplitSizes
    from miaudit.experiments.defend import DefendConfig, run_defend, write_defend
    from report_helpers import parse_report

    config = DefendConfig(
        dataset="digits", defenses=("none", "rounding:decimals=1"), seeds=(0, 1), split=SplitSizes(150, 150, 300, 150),
        epochs=2, attacks=("loss", "correctness"), n_shadow_models=2, n_bootstrap=20, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    out = tmp_path / "defend"
    study = run_defend(config, out_dir=out)
    write_defend(study, out)
    md = (out / "privacy_utility.md").read_text()
    every = md.split("Every attack, TPR@1%FPR / AUC")[1].splitlines()
    assert "| defense | correctness | loss |" in every and sum(line.startswith(("| none |", "| rounding")) for line in every) == 2
    assert main(["report", str(out), "--quiet"]) == 0
    page = parse_report(out / "report.html")
    header, *rows = page.tables["defense-table"]
    titles = [c["text"] for c in header]
    assert [r[0]["text"] for r in rows] == ["none", "rounding:decimals=1"]
    assert "headline attack (chosen without the truth)" in titles
    assert "upper bound (max over attacks on the target's truth): AUC" in titles
    col = titles.index("headline attack (chosen without the truth)")
    assert [r[col]["text"] for r in rows] == ["loss", "loss"]  # the verdict's fixed order, never the truth
    auc = titles.index("auc")
    for r, row in zip(rows, study["rows"]):
        assert float(r[auc]["value"]) == pytest.approx(row["headline_auc"])
    png = (out / "privacy_utility.png").read_bytes()
    import base64

    assert page.figures["fig-defenses"]["img"] == ["data:image/png;base64," + base64.b64encode(png).decode()]
    assert "none/seed-0" in page.by_id["defenses-note"]["text"]
    doc = json.loads((out / "privacy_utility.json").read_text())
    assert doc["per_seed"]["none"][1]["folder"] == "none/seed-1" and (out / "none" / "seed-1" / "results.json").is_file()
