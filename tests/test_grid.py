"""Experiment grids (`miaudit run`): config errors with the key's path before any training,
bit-for-bit reproducibility, resume after SIGKILL at a random moment, the results table."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from miaudit.cli import main
from miaudit.errors import ConfigError
from miaudit.experiments.config import parse_experiment, resolve_experiment
from miaudit.experiments.grid import RunOptions, run_grid
from miaudit.experiments.store import REPORTS, read_events

GRID = """
[experiment]
name = "tiny"

[grid]
datasets = ["digits"]
seeds = [0, 1]
attacks = ["loss", "lira"]
reference_models = [2]

[[grid.splits]]
target_in = 150
target_out = 150
attacker_pool = 300

[[grid.models]]
name = "mlp"
options = { hidden = [16] }
recipe = { epochs = 4, batch_size = 32 }

[run]
bootstrap = 20
"""


def _files(run_dir: Path) -> dict[str, bytes]:
    """Every result file of a run folder (not the event log or lock), by relative path."""
    out = {}
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir).as_posix()
        if p.is_file() and rel not in ("events.jsonl", ".lock"):
            out[rel] = p.read_bytes()
    return out


def _differences(a: dict[str, bytes], b: dict[str, bytes], events: list) -> str:
    """Which files differ and, for JSON, where (a failure message that says what to look at)."""
    lines = [f"only in one run: {sorted(set(a) ^ set(b))}"]
    for name in sorted(set(a) & set(b)):
        if a[name] != b[name]:
            if name.endswith(".json"):
                x, y = json.loads(a[name]), json.loads(b[name])
                keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k)) if isinstance(x, dict) else "?"
                lines.append(f"{name}: keys {keys}")
            else:
                lines.append(f"{name}: bytes differ")
    lines.append(f"killed after events: {[e.get('event') for e in events][-6:]}")
    return "; ".join(lines)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """The grid run once, uninterrupted, in this process, with its own fresh model cache."""
    base = tmp_path_factory.mktemp("grid")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIAUDIT_CACHE_DIR", str(base / "cache"))
        run_grid(parse_experiment(GRID), base / "run")
    return base / "run"


def test_store_layout_and_results_command(reference_run, capsys):
    cells = sorted((reference_run / "cells").iterdir())
    assert len(cells) == 2
    for cell in cells:
        assert {p.name for p in cell.iterdir()} == {"cell.json", "attacks", "results.json", "scores.csv"}
        res = json.loads((cell / "results.json").read_text())
        assert set(res["attacks"]) == {"loss", "lira"}
        assert res["config"]["n_shadow_models"] == 2
    for name in ("experiment.toml", "resolved.json", "versions.json", "table.csv", "table.json"):
        assert (reference_run / name).is_file()
    assert json.loads((reference_run / "versions.json").read_text())["torch"]
    rows = json.loads((reference_run / "table.json").read_text())["rows"]
    assert len(rows) == 4 and {r["seed"] for r in rows} == {0, 1}
    assert main(["results", str(reference_run), "--json"]) == 0
    agg = json.loads(capsys.readouterr().out)
    assert {r["attack"]: r["seeds"] for r in agg} == {"loss": 2, "lira": 2}
    assert main(["results", str(reference_run)]) == 0
    assert "lira" in capsys.readouterr().out


def test_same_config_and_seed_is_bit_identical_and_another_seed_splits_differently(reference_run, tmp_path):
    # A fresh cache: every model is trained again, in this process, and must come out the same.
    again = tmp_path / "again"
    run_grid(parse_experiment(GRID), again, RunOptions(cache_dir=str(tmp_path / "fresh-cache")))
    assert _files(again) == _files(reference_run)
    seed0, seed1 = (sorted((reference_run / "cells").glob(f"*-seed{s}-*"))[0] for s in (0, 1))
    members = []
    for cell in (seed0, seed1):
        rows = (cell / "scores.csv").read_text().splitlines()[1:]
        members.append({r.split(",")[0] for r in rows if r.split(",")[1] == "1"})
    assert members[0] != members[1]  # another seed draws another split
    assert (seed0 / "attacks" / "loss.json").read_bytes() != (seed1 / "attacks" / "loss.json").read_bytes()


def test_sigkill_at_a_random_moment_then_rerun_gives_the_uninterrupted_results(reference_run, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(GRID)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Kill at a random moment of the run's work (seeded, so a failure can be replayed); should the
    # run finish first on a fast machine, start over in a fresh folder with a shorter delay.
    rng = random.Random(int(os.environ.get("MIAUDIT_KILL_SEED", "9")))
    upper = 2.0
    for attempt in range(4):
        run_dir = tmp_path / f"run{attempt}"
        env["MIAUDIT_CACHE_DIR"] = str(tmp_path / f"cache{attempt}")
        cmd = [sys.executable, "-m", "miaudit", "run", str(config), "--out", str(run_dir), "--quiet"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (run_dir / "resolved.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, upper))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL and not any(e.get("event") == "finished" for e in read_events(run_dir)):
            break
        upper /= 2
    else:
        pytest.fail("the grid always finished before the kill")
    killed_events = read_events(run_dir)
    done = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    resumed, reference = _files(run_dir), _files(reference_run)
    assert resumed == reference, _differences(resumed, reference, killed_events)
    # Nothing finished before the kill was computed again: each attack ran at most once overall.
    attacks = [(e["cell"], e["attack"]) for e in read_events(run_dir) if e.get("event") == "attack"]
    assert len(attacks) == len(set(attacks))
    assert len(attacks) <= 4  # 2 cells x 2 attacks; one finished just before the kill may lack its event


def test_rerun_of_a_finished_grid_computes_nothing(reference_run):
    summary = run_grid(parse_experiment(GRID), reference_run)
    assert summary.computed_attacks == 0


def test_a_different_experiment_in_the_same_folder_is_refused_and_leaves_it(reference_run):
    before = _files(reference_run)
    with pytest.raises(ConfigError, match="different experiment"):
        run_grid(parse_experiment(GRID.replace("seeds = [0, 1]", "seeds = [0, 2]")), reference_run)
    assert _files(reference_run) == before


@pytest.mark.parametrize(
    "change, message",
    [
        (("[run]", "[run]\ncolour = 1"), "run.colour: unknown key"),
        (("seeds = [0, 1]", "seeds = [0, \"1\"]"), r"grid.seeds\[1\]: expected an integer"),
        (("seeds = [0, 1]", "seeds = [0, -1]"), r"grid.seeds\[1\]: must be >= 0"),
        (("seeds = [0, 1]", "seeds = []"), "grid.seeds: the list is empty"),
        (("seeds = [0, 1]", "seeds = [0, 0]"), r"grid.seeds\[1\]: repeats"),
        (("recipe = { epochs = 4", "recipe = { epoch = 4"), r"grid.models\[0\].recipe: unknown recipe key 'epoch'"),
        (("recipe = { epochs = 4", "recipe = { epochs = 0"), r"grid.models\[0\].recipe: .*epochs"),
        (("options = { hidden = [16] }", "options = { hidden = [16], depth = 3 }"), r"grid.models\[0\].options: .*depth"),
        (("name = \"mlp\"", "name = \"transformer\""), r"grid.models\[0\].name: unknown model 'transformer'"),
        (("target_in = 150", "target_in = 1500"), r"grid.splits\[0\]: with data set 'digits' \(1797 records\)"),
        (("target_in = 150", "target_in = 1.5"), r"grid.splits\[0\].target_in: a fraction must lie in \[0, 1\]"),
        (("attacks = [", "attacks = [\"telepathy\", "), r"grid.attacks\[0\]: unknown attack 'telepathy'"),
        (("datasets = [\"digits\"]", "datasets = [\"nope\"]"), r"grid.datasets\[0\]: .*nope"),
        (("reference_models = [2]", "reference_models = [0]"), r"grid.reference_models\[0\]: must be >= 1"),
        (("reference_models = [2]", "reference_models = 2"), "grid.reference_models: expected a list"),
        (("reference_models = [2]", "defenses = [\"dp-sgd-imaginary\"]"), r"grid.defenses\[0\]: unknown defense"),
        (("reference_models = [2]", "threat_models = [{ name = \"gray-box\", output = \"top0\" }]"), r"grid.threat_models\[0\]"),
        (("reference_models = [2]", "threat_models = [\"label-only\"]"), r"grid.attacks\[0\]: attack 'loss' is permitted by none"),
        (("[run]", "[run]\nexecutor = \"cloud\""), "run.executor: unknown executor 'cloud'"),
        (("[run]", "[run]\nreports = [\"pdf\"]"), r"run.reports\[0\]: unknown report 'pdf'"),
        (("[grid]", "[grid]\n[grid]"), "not valid TOML"),
    ],
)
def test_config_errors_name_the_key_before_anything_trains(tmp_path, capsys, change, message):
    old, new = change
    assert old in GRID
    config = tmp_path / "bad.toml"
    config.write_text(GRID.replace(old, new, 1))
    cache = tmp_path / "cache"
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--cache-dir", str(cache), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not cache.exists() and not (tmp_path / "out" / "cells").exists()  # nothing trained, nothing written


def test_missing_unreadable_and_non_utf8_experiment_files(tmp_path, capsys):
    assert main(["run", str(tmp_path / "absent.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    assert main(["run", str(tmp_path / "bin.toml")]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_results_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["results", str(tmp_path)]) == 2
    assert "not a results folder" in capsys.readouterr().err
    (tmp_path / "table.json").write_text("{not json")
    assert main(["results", str(tmp_path)]) == 2
    assert "damaged" in capsys.readouterr().err


def test_check_lists_the_cells_and_trains_nothing(tmp_path, capsys):
    config = tmp_path / "g.toml"
    config.write_text(GRID)
    assert main(["run", str(config), "--check", "--out", str(tmp_path / "out")]) == 0
    assert "2 cells; the file is valid" in capsys.readouterr().out
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    cells = resolve_experiment(parse_experiment(GRID))
    assert len({c.cell_id for c in cells}) == 2


def test_report_hook_is_called_with_the_run_folder(reference_run, tmp_path):
    seen = []

    def writer(run_dir: Path) -> Path:
        seen.append(run_dir)
        return run_dir / "table.json"

    REPORTS.add("test-hook", writer)
    try:
        run_dir = tmp_path / "copy"
        shutil.copytree(reference_run, run_dir)
        text = GRID.replace("[run]", "[run]\nreports = [\"test-hook\"]")
        # Run-level settings (reports) are not part of the resolved cells: the same folder resumes.
        run_grid(parse_experiment(text), run_dir)
    finally:
        REPORTS.remove("test-hook")
    assert seen == [run_dir]


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path, real_data_dir):
    from miaudit.experiments.config import load_experiment

    assert resolve_experiment(load_experiment(path), data_dir=str(real_data_dir))
