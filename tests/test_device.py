"""The run's torch device (miaudit.models.device): resolution, errors, and the CPU path unchanged."""

import numpy as np
import pytest
import torch

from miaudit.errors import ConfigError
from miaudit.models import ArchConfig, TrainingRecipe, train_one
from miaudit.models.device import cache_tag, current_device, resolve_device, use_device


def test_auto_is_cpu_without_cuda_and_cuda_with_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")


def test_explicit_cpu_trains_the_same_weights_and_keeps_cache_keys():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3, 8, 8)).astype(np.float32), rng.integers(0, 3, 64)
    arch, recipe = ArchConfig.of("cnn", channels=(4,), hidden=(8,)), TrainingRecipe(epochs=2, batch_size=16)
    plain = train_one(arch, recipe, x, y, num_classes=3, seed=1)
    with use_device("cpu"):
        assert current_device().type == "cpu" and cache_tag() == ""
        again = train_one(arch, recipe, x, y, num_classes=3, seed=1)
    for a, b in zip(plain.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_cuda_training_returns_cpu_models_close_to_cpu():  # pragma: no cover - needs a GPU
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3, 8, 8)).astype(np.float32), rng.integers(0, 3, 64)
    arch, recipe = ArchConfig.of("cnn", channels=(4,), hidden=(8,)), TrainingRecipe(epochs=2, batch_size=16)
    cpu = train_one(arch, recipe, x, y, num_classes=3, seed=1)
    with use_device("cuda"):
        gpu = train_one(arch, recipe, x, y, num_classes=3, seed=1)
        assert cache_tag() == "device=cuda"
    for a, b in zip(cpu.parameters(), gpu.parameters(), strict=True):
        assert b.device.type == "cpu" and torch.allclose(a, b, atol=1e-4)


TORCH_COMMANDS = {"audit", "audit-model", "audit-text", "defend", "many-targets", "privacy-audit", "reproduce", "run", "study"}


def test_every_command_that_trains_or_queries_torch_models_takes_device():
    from miaudit.cli import build_parser
    from miaudit.cli.common import COMMANDS

    assert {name for name, command in COMMANDS.items() if command.torch} == TORCH_COMMANDS
    parser = build_parser()
    for name in TORCH_COMMANDS:
        assert "--device" in parser._subparsers._group_actions[0].choices[name].format_help(), name  # noqa: SLF001
    assert parser.parse_args(["audit", "--dataset", "digits"]).device == "auto"
    assert not hasattr(parser.parse_args(["limits"]), "device")


def test_device_cuda_without_a_gpu_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    from miaudit.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["audit", "--dataset", "digits", "--device", "cuda", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no CUDA GPU" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "results.json").exists()


def test_device_cpu_gives_the_default_audit_bit_for_bit(tmp_path):
    from miaudit.cli import main

    common = ["audit", "--dataset", "digits", "--model", "mlp", "--attacks", "loss,lira", "--shadow-models", "2",
              "--bootstrap", "0", "--no-report", "--quiet", "--no-cache"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--device", "cpu", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "scores.csv").read_bytes() == (tmp_path / "b" / "scores.csv").read_bytes()
    import json

    record = json.loads((tmp_path / "b" / "results.json").read_text())
    assert record["versions"]["device"] == "cpu"


def test_a_worker_trains_on_the_jobs_device(monkeypatch):
    """An executor's worker cannot see the caller's device: the job carries it, and a worker
    without that device refuses instead of training on the CPU."""
    from miaudit.models.executors import train_job
    from miaudit.models.jobs import TrainJob

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype(np.float32), rng.integers(0, 2, 32)
    job = TrainJob(ArchConfig.of("mlp", hidden=(4,)), TrainingRecipe(epochs=1, batch_size=16), 2, (np.arange(16),), (1,))
    assert job.device == "cpu" and len(train_job(job, x, y)) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train_job(TrainJob(job.arch, job.recipe, 2, job.subsets, job.seeds, device="cuda"), x, y)


def test_resumed_runs_record_the_device_only_off_the_cpu():
    from miaudit.experiments.store import versions

    assert "device" not in versions()  # CPU runs keep the keys runs had before --device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_cuda_white_box_gradients_match_the_cpu():  # pragma: no cover - needs a GPU
    from miaudit.models.classifier import TorchClassifier
    from miaudit.targets.access import TargetAccess
    from miaudit.threat import THREAT_MODELS

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, 40)
    module = train_one(ArchConfig.of("mlp", hidden=(8,)), TrainingRecipe(epochs=2, batch_size=16), x, y, num_classes=3, seed=0)
    access = TargetAccess(TorchClassifier(module, num_classes=3), THREAT_MODELS.get("white-box"), input_shape=(6,))
    cpu = access.gradients(x, y)
    with use_device("cuda"):
        gpu = access.gradients(x, y)
        losses = access.losses(x, y)
    for layer in cpu:
        np.testing.assert_allclose(cpu[layer], gpu[layer], atol=1e-5)
    np.testing.assert_allclose(losses, access.losses(x, y), atol=1e-5)
