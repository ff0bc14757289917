"""Reproduction presets and ``miaudit reproduce``: the Song & Mittal / MemGuard Location30 protocol."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from miaudit.attacks.shadow_models import half_splits
from miaudit.data.split import make_split
from miaudit.errors import ConfigError, UnknownNameError
from miaudit.experiments.presets import PRESETS
from miaudit.experiments.reproduce import TABLE_COLUMNS, Reproduction, SeedRun, markdown
from miaudit.models import ArchConfig, TrainingRecipe, build_module, learning_rate

PRESET = "song-mittal-location30"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "miaudit", *args], capture_output=True, text=True, timeout=600)


def test_song_mittal_preset_is_the_published_protocol() -> None:
    p = PRESETS.get(PRESET)
    config = p.config(3, attacks=("correctness",))
    assert (config.dataset, config.model, config.seed, config.threat_model) == ("location30", "mlp", 3, "gray-box")
    assert config.use_cache and config.attacks == ("correctness",)

    # 446-1024-512-256-128-30, ReLU, Glorot-uniform weights and zero biases.
    assert config.model_options == {"hidden": [1024, 512, 256, 128], "activation": "relu", "init": "glorot_uniform"}
    arch = ArchConfig(config.model, config.model_options)
    assert arch.resolved().option_dict() == {"hidden": (1024, 512, 256, 128), "activation": "relu", "init": "glorot_uniform"}
    module = build_module(arch, (446,), 30)
    widths = [(m.in_features, m.out_features) for m in module.modules() if hasattr(m, "in_features")]
    assert widths == [(446, 1024), (1024, 512), (512, 256), (256, 128), (128, 30)]
    assert sum(t.numel() for t in module.parameters()) == 1_150_622  # the ~1.1M-parameter MLP

    # Plain SGD, lr 0.01, 200 epochs of batches of 64, lr x0.1 from epoch 150 (0-based) on.
    recipe = TrainingRecipe(**config.recipe)
    assert recipe == TrainingRecipe(
        optimizer="sgd", lr=0.01, momentum=0.0, weight_decay=0.0, epochs=200, batch_size=64,
        schedule="step", milestones=(150,), gamma=0.1,
    )  # fmt: skip
    assert learning_rate(recipe, 0) == learning_rate(recipe, 149) == 0.01
    assert learning_rate(recipe, 150) == pytest.approx(0.001) and learning_rate(recipe, 199) == pytest.approx(0.001)

    # 1000 members, 1000 evaluated non-members, a 1000-record pool, nothing else used (of 5010).
    assert config.split is not None
    assert config.split.resolve(5010) == {"target_in": 1000, "target_out": 1000, "attacker_pool": 1000, "population": 0}
    split = make_split(5010, config.split, seed=3)
    assert sum(split.sizes().values()) == 3000
    # One shadow model on a random 500 of the pool; the other 500 are its non-members.
    assert config.n_shadow_models == 1
    (shadow_in,) = half_splits(1000, config.n_shadow_models, seed=4)
    assert len(shadow_in) == 500 and len(np.unique(shadow_in)) == 500

    assert p.seeds == (0, 1, 2, 3, 4)
    assert [a.name for a in p.attacks] == ["correctness", "confidence", "entropy", "modified-entropy", "nn"]
    published = {a.name: (a.published.value, a.published.tolerance) for a in p.attacks if a.published}
    assert published == {
        "correctness": (0.687, 0.05),
        "confidence": (0.763, 0.05),
        "entropy": (0.616, 0.05),
        "modified-entropy": (0.781, 0.05),
        "nn": (0.73, 0.05),
    }
    assert p.test_accuracy is not None and (p.test_accuracy.value, p.test_accuracy.tolerance) == (0.626, 0.04)
    assert p.train_accuracy is not None and p.train_accuracy.value == 1.0
    assert "Song" in p.citation and "MemGuard" in p.citation
    json.dumps(p.protocol())  # JSON-able


def test_epoch_override_and_attack_names() -> None:
    p = PRESETS.get(PRESET)
    assert p.config(0, attacks=(), epochs=2).recipe["epochs"] == 2
    assert p.config(0, attacks=()).recipe["epochs"] == 200
    with pytest.raises(ConfigError, match="--epochs"):
        p.config(0, attacks=(), epochs=0)
    # The registry spelling is preferred, the alias accepted, anything else reported missing.
    found, missing = p.resolve_attacks({"correctness", "confidence", "modified_entropy", "entropy"})
    assert found == {"correctness": "correctness", "confidence": "confidence", "entropy": "entropy", "modified-entropy": "modified_entropy"}
    assert missing == ["nn"]
    with pytest.raises(UnknownNameError, match=PRESET):
        PRESETS.get("song-mittal-location31")


def _run(seed: int, train: float, test: float, ba: dict[str, float]) -> SeedRun:
    return SeedRun(seed, train, test, dict(ba), {n: 0.6 for n in ba}, {n: v + 0.01 for n, v in ba.items()},
                   {n: "shadow models" for n in ba}, {}, 1.0)  # fmt: skip


def test_table_rows_means_and_goals() -> None:
    p = PRESETS.get(PRESET)
    rep = Reproduction(p, (0, 1), {"correctness": "correctness", "confidence": "confidence"}, ["entropy", "modified-entropy", "nn"], None)
    rep.runs += [
        _run(0, 1.0, 0.60, {"correctness": 0.70, "confidence": 0.80}),
        _run(1, 1.0, 0.62, {"correctness": 0.69, "confidence": 0.84}),
    ]
    rows = {r.key: r for r in rep.rows()}
    test_row = rows["test_accuracy"]
    assert test_row.mean == pytest.approx(0.61) and test_row.std == pytest.approx(math.sqrt(2) * 0.01)
    assert test_row.within_goal(True) is True
    assert rows["attack:confidence:balanced_accuracy"].mean == pytest.approx(0.82)
    assert rows["attack:confidence:balanced_accuracy"].within_goal(True) is False  # 0.82 - 0.763 > 0.05
    assert rows["attack:nn:balanced_accuracy"].values == () and "not registered" in rows["attack:nn:balanced_accuracy"].note
    assert rows["attack:correctness:auc"].published is None
    md = markdown(rep)
    assert "| " + " | ".join(TABLE_COLUMNS) + " |" in md
    assert "| target test accuracy | 0.626 | 0.610 ± 0.014 (n=2) | yes (-0.016, goal ±0.04) |" in md
    assert "| confidence: balanced accuracy | 0.763 | 0.820 ± 0.028 (n=2) | NO (+0.057, goal ±0.05) |" in md
    assert "not run: the attack is not registered" in md and "NOT the protocol" not in md
    assert "## Known gaps with the paper" in md and "Ruled out" in md
    d = rep.to_dict()
    json.dumps(d)
    assert d["protocol"] is True and d["missing_attacks"] == ["entropy", "modified-entropy", "nn"]

    quick = replace(rep, epochs=2)
    assert not quick.protocol and "NOT the protocol" in markdown(quick)
    assert all(r["within_goal"] is None for r in quick.to_dict()["rows"])


def test_reproduce_list() -> None:
    proc = run_cli("reproduce", "--list")
    assert proc.returncode == 0, proc.stderr
    assert PRESET in proc.stdout
    proc = run_cli("reproduce", "--list", "--json")
    assert proc.returncode == 0 and PRESET in [row["preset"] for row in json.loads(proc.stdout)]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["reproduce", "no-such-paper"], "unknown reproduction preset 'no-such-paper'; choose one of: memguard-location30, song-mittal-location30"),
        (["reproduce"], "give a preset name, or --list"),
        (["reproduce", PRESET, "--seeds", "0,x"], "--seeds must be comma-separated integers"),
        (["reproduce", PRESET, "--epochs", "0"], "--epochs must be >= 1"),
    ],
)
def test_reproduce_user_errors_exit_2_with_one_line(args: list[str], fragment: str) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_tiny_run_on_real_location30_writes_json_and_markdown(real_data_dir, tmp_path) -> None:
    out = tmp_path / "rep"
    proc = run_cli("reproduce", PRESET, "--epochs", "2", "--seeds", "0", "--out", str(out), "--data-dir", str(real_data_dir))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "reproduction.json").read_text())
    md = (out / "reproduction.md").read_text()
    assert summary["preset"] == PRESET and summary["protocol"] is False and summary["epochs_override"] == 2
    assert summary["seeds"] == [0] and len(summary["runs"]) == 1
    assert summary["settings"]["recipe"]["epochs"] == 200  # the protocol, with the override beside it
    run = summary["runs"][0]
    assert 0.0 <= run["train_accuracy"] <= 1.0 and 0.0 <= run["test_accuracy"] <= 1.0
    keys = [r["key"] for r in summary["rows"]]
    assert keys[:2] == ["train_accuracy", "test_accuracy"]
    for attack in summary["attacks"]:  # every registered attack of the preset has its two rows
        assert f"attack:{attack}:balanced_accuracy" in keys and f"attack:{attack}:auc" in keys
    for attack in summary["missing_attacks"]:
        assert f"attack:{attack}:balanced_accuracy" in keys
    assert set(summary["attacks"]) | set(summary["missing_attacks"]) == {"correctness", "confidence", "entropy", "modified-entropy", "nn"}
    for row in summary["rows"]:
        assert set(row) >= {"metric", "published", "mean", "std", "n_seeds", "within_goal"}
        assert row["within_goal"] is None  # not the protocol: no verdict
    assert "| " + " | ".join(TABLE_COLUMNS) + " |" in md
    assert "NOT the protocol" in md and "| target test accuracy | 0.626 |" in md
    assert (out / "seed-0" / "results.json").is_file() and (out / "seed-0" / "scores.csv").is_file()
