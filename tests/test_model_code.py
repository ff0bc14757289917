"""TorchScript files run their own code: refused by default, and sandboxed with --trust-model-code.

Every hostile file is built here with ``torch.jit.script`` + ``torch.jit.save``: a module whose
``__setstate__`` (run by ``torch.jit.load``) or ``forward`` overwrites a victim file through
``torch.from_file(victim, shared=True)``. A plain ``torch.jit.load`` in a throwaway process
shows the attack works; miaudit must leave the victim byte-identical with and without the flag.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import miaudit
from miaudit.errors import ConfigError, DataError, InputError
from miaudit.targets import model_process
from miaudit.targets.external import TorchScriptClassifier
from miaudit.targets.model_process import ProtocolError, read_array, read_frame
from miaudit.targets.sandbox import landlock_abi

pytestmark = pytest.mark.skipif(landlock_abi()[0] < 1, reason=f"no Landlock here: {landlock_abi()[1]}")

ORIGINAL = b"#!/bin/sh\necho hello\n"
PAYLOAD = b"#!/bin/sh\nrm -rf ~\n"
N_FEATURES, N_CLASSES = 4, 3
ATTACKS = ("correctness", "ml-leaks-3")


class Linear(nn.Module):
    """A linear model that also holds a file ``path`` and the bytes ``payload`` to write there."""

    def __init__(self, path: str, payload: bytes) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(N_CLASSES, N_FEATURES))
        self.bias = nn.Parameter(torch.zeros(N_CLASSES))
        self.path = path
        self.payload: list[int] = list(payload)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


class WritesOnLoad(Linear):
    """Its ``__setstate__``, run while ``torch.jit.load`` reads the archive, writes ``payload`` into ``path``."""

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, torch.Tensor, str, list[int], bool]:
        return (self.weight, self.bias, self.path, self.payload, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, torch.Tensor, str, list[int], bool]) -> None:
        self.weight, self.bias, self.path, self.payload, self.training = state
        mapped = torch.from_file(self.path, shared=True, size=len(self.payload), dtype=torch.uint8)
        written = mapped.copy_(torch.tensor(self.payload, dtype=torch.uint8))
        self.bias = self.bias + 0 * written.sum()  # uses the write, so TorchScript keeps it


class WritesOnForward(Linear):
    """Its ``forward`` writes ``payload`` into ``path`` (created if new), then returns the logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mapped = torch.from_file(self.path, shared=True, size=len(self.payload), dtype=torch.uint8)
        written = mapped.copy_(torch.tensor(self.payload, dtype=torch.uint8))
        return nn.functional.linear(x, self.weight, self.bias) + 0 * written.sum()


def _save(module: nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Two hostile archives aimed at one victim script, and records to audit them on."""
    d = tmp_path_factory.mktemp("hostile")
    victim = d / "victim.sh"
    torch.manual_seed(0)
    files = {kind: _save(cls(str(victim), PAYLOAD), d / f"{kind}.pt") for kind, cls in (("load", WritesOnLoad), ("forward", WritesOnForward))}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, N_FEATURES)).astype(np.float32)
    y = np.arange(40) % N_CLASSES
    member = np.arange(40) % 2 == 0
    np.savez(d / "data.npz", x=x, y=y, is_member=member)
    np.savez(d / "train.npz", x=x[member], y=y[member])
    np.savez(d / "test.npz", x=x[~member], y=y[~member])
    return {"dir": d, "victim": victim, **files}


def _fresh_victim(hostile) -> Path:
    victim = hostile["victim"]
    victim.write_bytes(ORIGINAL)
    return victim


def _miaudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "miaudit", *args], capture_output=True, text=True, timeout=300)


def _argv(command: str, hostile, kind: str, out: Path) -> list[str]:
    d = hostile["dir"]
    data = ["--data", str(d / "data.npz")] if command == "audit-model" else ["--train", str(d / "train.npz"), "--test", str(d / "test.npz")]
    return [command, "--model-file", str(hostile[kind]), *data, "--attacks", "correctness", "--bootstrap", "0", "--out", str(out), "--quiet"]


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err)
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("kind", ["load", "forward"])
def test_the_hostile_files_overwrite_the_victim_when_loaded_naively(hostile, kind):
    victim = _fresh_victim(hostile)
    code = f"import torch; m = torch.jit.load({str(hostile[kind])!r}); m(torch.zeros(2, {N_FEATURES}))"
    subprocess.run([sys.executable, "-B", "-c", code], check=True, capture_output=True, timeout=120)
    assert victim.read_bytes().startswith(PAYLOAD)  # the attack is real: these tests are not vacuous


@pytest.mark.parametrize("command", ["audit-model", "audit"])
@pytest.mark.parametrize("kind", ["load", "forward"])
def test_torchscript_is_refused_by_default_before_it_is_loaded(hostile, tmp_path, kind, command):
    victim = _fresh_victim(hostile)
    err = _one_line_error(_miaudit(*_argv(command, hostile, kind, tmp_path / "out")))
    assert "--trust-model-code" in err and "ONNX" in err and "miaudit.audit(module" in err and "model folder" in err, err
    assert victim.read_bytes() == ORIGINAL
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["audit-model", "audit"])
@pytest.mark.parametrize("kind", ["load", "forward"])
def test_with_trust_model_code_the_write_fails_inside_the_sandbox(hostile, tmp_path, kind, command):
    """Decided: the forward variant fails as a one-line error too (TorchScript cannot catch the
    sandbox's refusal, so its forward raises), exit 2; the load variant never finishes loading."""
    victim = _fresh_victim(hostile)
    err = _one_line_error(_miaudit(*_argv(command, hostile, kind, tmp_path / "out"), "--trust-model-code"))
    assert "Permission denied" in err and "victim.sh" in err, err
    assert ("cannot load" in err) if kind == "load" else ("failed on inputs" in err), err
    assert victim.read_bytes() == ORIGINAL


def _children() -> set[int]:
    """Live (non-zombie) processes whose parent is this one."""
    pids = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(os.getpid()) and not fields.get("State", "").startswith("Z"):
            pids.add(int(status.parent.name))
    return pids


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def test_the_sandboxed_model_writes_only_inside_its_scratch_folder(tmp_path):
    outside = tmp_path / "new-file.bin"
    x = np.random.default_rng(1).normal(size=(5, N_FEATURES)).astype(np.float32)
    torch.manual_seed(0)
    with TorchScriptClassifier(_save(WritesOnForward(str(outside), b"outside"), tmp_path / "out.pt"), trust_model_code=True) as clf:
        with pytest.raises(InputError, match="Permission denied"):
            clf.predict_logits(x)
    assert not outside.exists()
    # a relative path lands in the child's scratch folder (its working directory): allowed there
    inside = WritesOnForward("inside.bin", b"inside")
    clf = TorchScriptClassifier(_save(inside, tmp_path / "in.pt"), trust_model_code=True)
    scratch, pid = Path(clf.process.scratch), clf.process.pid
    expected = nn.functional.linear(torch.from_numpy(x), inside.weight, inside.bias).detach().numpy()  # not inside(x): that writes here
    np.testing.assert_allclose(clf.predict_logits(x), expected, atol=1e-6)
    assert (scratch / "inside.bin").read_bytes() == b"inside"
    assert not Path("inside.bin").exists()
    clf.close()
    assert _gone(pid) and not scratch.exists()
    with pytest.raises(DataError, match="closed"):
        clf.predict_logits(x)


@pytest.fixture(scope="module")
def benign(tmp_path_factory):
    """A small MLP trained (and overfit) on its members, and its TorchScript archive."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=160) > 0).astype(np.int64) + (x[:, 1] > 1)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(N_FEATURES, 32), nn.ReLU(), nn.Linear(32, N_CLASSES))
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(module(torch.from_numpy(x[:80])), torch.from_numpy(y[:80])).backward()
        opt.step()
    module.eval()
    path = _save(module, tmp_path_factory.mktemp("benign") / "model.pt")
    return {"module": module, "path": path, "train": (x[:80], y[:80]), "test": (x[80:], y[80:])}


def test_a_benign_model_audited_in_the_sandbox_scores_like_the_in_process_module(benign, monkeypatch):
    started: list[model_process.ModelProcess] = []
    init = model_process.ModelProcess.__init__

    def recording(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(model_process.ModelProcess, "__init__", recording)
    kw = {"train": benign["train"], "test": benign["test"], "threat_model": "black-box", "attacks": ATTACKS, "n_bootstrap": 0, "pool_share": 0.0}
    ref = miaudit.audit(benign["module"], **kw)
    with pytest.raises(ConfigError, match="--trust-model-code"):
        miaudit.audit(str(benign["path"]), **kw)
    got = miaudit.audit(str(benign["path"]), trust_model_code=True, **kw)
    assert list(got.scores) == list(ATTACKS)
    for name in ATTACKS:
        np.testing.assert_allclose(got.scores[name], ref.scores[name], atol=1e-6)
    assert got.summary["target"]["train_accuracy"] == ref.summary["target"]["train_accuracy"] > got.summary["target"]["test_accuracy"]
    # the audit stopped and reaped its model process: no zombie, no orphan
    assert len(started) == 1 and started[0]._proc.returncode == 0
    assert _gone(started[0].pid) and started[0].pid not in _children()
    assert not Path(started[0].scratch).exists()


def test_the_model_process_dies_with_its_parent(benign):
    code = (
        "import os, signal\n"
        "from miaudit.targets.external import TorchScriptClassifier\n"
        f"clf = TorchScriptClassifier({str(benign['path'])!r}, trust_model_code=True)\n"
        "print(clf.process.pid, clf.process.scratch, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-B", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid, scratch = proc.stdout.split()
    deadline = time.monotonic() + 10
    while not _gone(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(int(pid))
    shutil.rmtree(scratch)  # a killed parent cannot remove the child's scratch folder


def test_a_crashed_model_process_is_a_one_line_data_error(benign):
    clf = TorchScriptClassifier(benign["path"], trust_model_code=True)
    os.kill(clf.process.pid, signal.SIGKILL)
    with pytest.raises(DataError, match="stopped .killed by signal 9") as info:
        clf.predict_logits(benign["test"][0])
    assert "\n" not in str(info.value) and _gone(clf.process.pid)


def test_without_landlock_trust_model_code_refuses_in_one_line(benign, monkeypatch):
    from miaudit.targets import sandbox

    monkeypatch.setattr(sandbox, "landlock_abi", lambda: (0, "kernel 4.19 has no Landlock"))
    with pytest.raises(ConfigError, match="never runs model code unsandboxed") as info:
        TorchScriptClassifier(benign["path"], trust_model_code=True)
    assert "\n" not in str(info.value) and "kernel 4.19" in str(info.value)


def _frame(header: dict, payload: bytes = b"") -> tuple[dict, bytes]:
    import struct

    data = (lambda h: struct.pack(">I", len(h)) + h)(json.dumps({"nbytes": len(payload), **header}).encode()) + payload
    view = memoryview(data)

    def read_exact(n: int) -> bytes:
        nonlocal view
        chunk, view = bytes(view[:n]), view[n:]
        return chunk

    return read_frame(read_exact, 1 << 20)


@pytest.mark.parametrize(
    "header, payload, match",
    [
        ({"kind": "array", "dtype": "|O", "shape": [1]}, b"\0" * 8, "float array"),
        ({"kind": "array", "dtype": "<f8", "shape": [2, 3]}, b"\0" * 8, "in 8 bytes"),
        ({"kind": "array", "dtype": "<f8", "shape": [-1]}, b"\0" * 8, "shape"),
        ({"kind": "array", "dtype": "<f8", "shape": "8"}, b"\0" * 8, "shape"),
        ({"kind": "array", "dtype": "<f8", "shape": [1], "nbytes": 1 << 30}, b"", "payload"),
        ({"kind": 3}, b"", "kind"),
    ],
)
def test_replies_from_the_child_are_validated_never_unpickled(header, payload, match):
    with pytest.raises(ProtocolError, match=match):
        read_array(*_frame(header, payload))
    with pytest.raises(ProtocolError, match="header of"):
        read_frame(lambda n: b"\xff\xff\xff\xff" if n == 4 else b"", 1 << 20)
