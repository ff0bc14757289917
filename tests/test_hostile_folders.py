"""Hostile and mistaken folders, locks and failures: each checked before any work, one line,
exit 2, no traceback, nothing written outside --out and the cache, earlier results intact.

Read-only file systems are real ones: a read-only bind mount inside an unprivileged user and
mount namespace (``unshare -r -m``), since permission bits do not stop root (CI runs as root).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from miaudit.cli import main
from miaudit.cli.errors import INTERNAL_ERROR, quiet_warnings, report_failure
from miaudit.folders import LOCK_FILE, locked

SMALL_AUDIT = ["audit", "--dataset", "digits", "--attacks", "loss", "--shadow-models", "1", "--split", "100,100,200",
               "--epochs", "1", "--bootstrap", "0", "--no-report", "--quiet"]  # fmt: skip
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A cache, a results folder with earlier results, and a check that a command is refused in
    one line and that no file anywhere under tmp_path changed or appeared."""
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": true}')
    monkeypatch.setenv("MIAUDIT_CACHE_DIR", str(cache))

    def refused(argv: list[str], capsys, pattern: str) -> str:
        before = _tree(tmp_path)
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2, err
        assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
        assert re.search(pattern, err, re.IGNORECASE), err
        assert _tree(tmp_path) == before
        return err

    return tmp_path, cache, out, refused


@pytest.mark.parametrize(
    ("where", "pattern"),
    [
        ("a file", "is a file, not a folder"),
        ("under a file", "lies under a file"),
        ("/", "root of the file system"),
        ("the cache", "overlaps the model cache"),
        ("inside the cache", "overlaps the model cache"),
        ("inside the data folder", "overlaps the data folder"),
        ("empty", "--out is empty"),
    ],
)
def test_out_folders_that_cannot_hold_results_are_refused_before_training(world, capsys, where, pattern):
    tmp_path, cache, out, refused = world
    (tmp_path / "afile").write_text("mine")
    data = tmp_path / "data"
    data.mkdir()
    target = {
        "a file": tmp_path / "afile", "under a file": tmp_path / "afile" / "sub", "/": Path("/"),
        "the cache": cache, "inside the cache": cache / "models", "inside the data folder": data / "results", "empty": "",
    }[where]  # fmt: skip
    refused([*SMALL_AUDIT, "--data-dir", str(data), "--out", str(target)], capsys, pattern)
    assert not list((cache / "models").iterdir())  # nothing trained


def test_a_cache_path_that_is_a_file_is_refused_before_training(world, capsys, monkeypatch):
    tmp_path, _, out, refused = world
    (tmp_path / "cachefile").write_text("not a folder")
    monkeypatch.setenv("MIAUDIT_CACHE_DIR", str(tmp_path / "cachefile"))
    refused([*SMALL_AUDIT, "--out", str(out)], capsys, r"model cache .* is a file")


def test_attack_lists_that_name_nothing_are_refused_in_every_command(world, capsys):
    tmp_path, _, out, refused = world
    for argv in (
        [*SMALL_AUDIT[:3], "--attacks", ","],
        ["defend", "--dataset", "digits", "--attacks", " , "],
        ["many-targets", "--dataset", "digits", "--attacks", ","],
        ["study", "overfitting", "--dataset", "digits", "--attacks", ","],
    ):
        refused([*argv, "--out", str(out)], capsys, "names nothing")


def test_a_failed_command_leaves_no_folder_it_created(world, capsys):
    tmp_path, _, _, refused = world
    refused([*SMALL_AUDIT[:3], "--attacks", "no-such-attack", "--out", str(tmp_path / "new")], capsys, "no-such-attack")
    assert not (tmp_path / "new").exists()


def test_a_second_command_on_a_folder_in_use_is_refused(world, capsys):
    _, cache, out, refused = world
    with locked(out):  # another audit holds the folder
        refused([*SMALL_AUDIT, "--out", str(out)], capsys, "another miaudit .* is using")
    assert not list((cache / "models").iterdir())


def test_a_cache_entry_that_is_a_folder_is_one_line_and_trains_nothing(world, capsys):
    tmp_path, cache, _, refused = world
    first = tmp_path / "first"
    assert main([*SMALL_AUDIT, "--out", str(first)]) == 0
    assert not (first / LOCK_FILE).exists()  # a finished command leaves no lock file behind
    entries = sorted((cache / "models").rglob("*.safetensors"))
    assert entries
    entries[0].unlink()
    entries[0].mkdir()
    refused([*SMALL_AUDIT, "--out", str(tmp_path / "second")], capsys, "cache entry .* is not a regular file")


# --- read-only file systems (a real read-only mount) ---

def _unshare_ok() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_ok(), reason="needs unprivileged user namespaces (unshare -r -m)")
@pytest.mark.parametrize("what", ["out", "cache"])
def test_a_read_only_out_or_cache_is_refused_before_training(tmp_path, what):
    frozen = tmp_path / "frozen"
    (frozen / "models").mkdir(parents=True)
    (frozen / "results.json").write_text('{"earlier": true}')
    cache = frozen if what == "cache" else tmp_path / "cache"
    out = frozen if what == "out" else tmp_path / "out"
    before = _tree(tmp_path)
    command = [sys.executable, "-m", "miaudit", *SMALL_AUDIT, "--out", str(out)]
    script = (
        f"mount --bind {frozen} {frozen} && mount -o remount,bind,ro {frozen} && "
        f"exec {' '.join(map(str, command))}"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "MIAUDIT_CACHE_DIR": str(cache)}
    proc = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    assert "read-only file system" in err
    assert _tree(tmp_path) == before


# --- the one mapping of failures ---

def test_file_system_memory_and_recursion_failures_are_one_line(capsys):
    for exc, pattern in (
        (PermissionError(13, "Permission denied", "/x/y"), r"cannot use '/x/y': Permission denied; check its permissions"),
        (OSError(28, "No space left on device", "/x"), "the disk is full"),
        (MemoryError(), "out of memory"),
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
    ):
        assert report_failure(exc) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and re.search(pattern, err), err


def test_an_internal_bug_shows_its_traceback_and_asks_to_be_reported(monkeypatch, capsys):
    from miaudit.cli.common import COMMANDS, Command

    def broken(args):
        return 1 / 0

    real = COMMANDS.get("attacks")
    monkeypatch.setattr(COMMANDS, "get", lambda name: Command(real.help, real.configure, broken))
    assert main(["attacks"]) == INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err and "bug in miaudit" in err


def test_verbose_adds_the_traceback_to_a_user_error(capsys, tmp_path):
    assert main(["audit", "--dataset", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o"), "--verbose"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error:")


def test_library_warnings_are_hidden_and_miaudit_warnings_are_one_line(capsys):
    import numpy as np

    with quiet_warnings(verbose=False):
        np.log(np.zeros(1))  # numpy's RuntimeWarning: hidden
        warnings.warn("sklearn says something\nover two lines", FutureWarning, stacklevel=1)
        from miaudit.cli import errors as module

        exec(compile("import warnings; warnings.warn('a miaudit warning\\nsecond line')", module.__file__, "exec"))
    err = capsys.readouterr().err.strip()
    assert err == "warning: a miaudit warning", err
