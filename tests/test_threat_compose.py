"""Threat models derived from a preset (output, query budget, price) and white-box access."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from miaudit.errors import ConfigError, MiauditError
from miaudit.experiments import AuditConfig, result_summary, run_audit, write_results
from miaudit.models import TorchClassifier
from miaudit.models.classifier import softmax
from miaudit.targets.access import (
    AccessDeniedError,
    ModelBackend,
    QueryBudgetExceededError,
    TargetAccess,
)
from miaudit.threat import THREAT_MODELS, OutputAccess, derive

FAST = {"dataset": "digits", "recipe": {"epochs": 3}, "n_bootstrap": 0, "use_cache": False, "n_shadow_models": 1}


# -- derive -------------------------------------------------------------------------------


def test_derive_without_overrides_is_the_preset():
    assert derive("gray-box") is THREAT_MODELS.get("gray-box")


@pytest.mark.parametrize(
    "output, access, k, suffix",
    [("label", OutputAccess.LABEL, None, "label"), ("top3", OutputAccess.TOP_K, 3, "top3"),
     ("Top-5", OutputAccess.TOP_K, 5, "top5"), ("full", OutputAccess.PROBABILITIES, None, "full")],
)
def test_derive_output_keeps_the_preset_knowledge(output, access, k, suffix):
    t = derive("gray-box", output=output)
    assert (t.output, t.top_k, t.name) == (access, k, f"gray-box+{suffix}")
    assert t.knows_architecture and t.knows_training_recipe and not t.knows_parameters


def test_derive_budget_and_price():
    t = derive("black-box", query_budget=100, price_per_query=0.5)
    assert (t.query_budget, t.price_per_query, t.name) == (100, 0.5, "black-box+budget=100+price=0.5")
    assert t.output == OutputAccess.PROBABILITIES


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"output": "top0"}, "k >= 1"),
        ({"output": "top"}, "unknown output"),
        ({"output": "everything"}, "expected label, topK"),
        ({"query_budget": -1}, "query budget"),
        ({"query_budget": 2.5}, "query budget"),
        ({"price_per_query": -0.1}, "price per query"),
        ({"price_per_query": float("nan")}, "price per query"),
        ({"price_per_query": "cheap"}, "price per query"),
    ],
)
def test_derive_rejects_bad_overrides(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        derive("gray-box", **kwargs)


def test_derive_unknown_preset():
    with pytest.raises(MiauditError, match="unknown threat model"):
        derive("purple-box", output="label")


# -- TargetAccess under derived threat models ---------------------------------------------


def _mlp(seed: int = 0) -> TorchClassifier:
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    return TorchClassifier(module, num_classes=3, input_shape=(4,))


def _xy(n: int = 5):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n)


def test_label_only_derived_threat_hides_probabilities():
    x, _ = _xy()
    access = TargetAccess(_mlp(), derive("white-box", output="label"), input_shape=(4,))
    assert access.predict_label(x).shape == (5,)
    with pytest.raises(AccessDeniedError):
        access.predict_proba(x)
    with pytest.raises(AccessDeniedError):
        access.predict_topk(x)
    with pytest.raises(AccessDeniedError):
        access.losses(x, np.zeros(5, int))


def test_budget_counts_records_and_fails_before_querying():
    x, y = _xy()
    access = TargetAccess(_mlp(), derive("white-box", query_budget=7), input_shape=(4,))
    access.predict_proba(x)
    with pytest.raises(QueryBudgetExceededError, match="budget of 7"):
        access.losses(x, y)
    assert access.queries == 5
    access.parameters()
    assert access.queries == 6


def test_white_box_losses_equal_minus_log_softmax():
    model, (x, y) = _mlp(), _xy()
    access = TargetAccess(model, THREAT_MODELS.get("white-box"), input_shape=(4,))
    expected = -np.log(model.predict_proba(x)[np.arange(len(y)), y])
    np.testing.assert_allclose(access.losses(x, y), expected, rtol=1e-10, atol=1e-12)
    assert access.queries == len(x)


def test_white_box_gradients_match_autograd():
    model, (x, y) = _mlp(), _xy(2)
    access = TargetAccess(model, THREAT_MODELS.get("white-box"), input_shape=(4,))
    grads = access.gradients(x, y)
    module = model.module
    layers = ["0", "2", "4"]
    assert list(grads) == layers
    for layer, (m_in, m_out) in zip(layers, [(4, 8), (8, 6), (6, 3)]):
        assert grads[layer].shape == (2, m_in * m_out + m_out)
    for i in range(2):
        module.zero_grad()
        logits = module(torch.from_numpy(x[i : i + 1]))
        nn.functional.cross_entropy(logits, torch.tensor([int(y[i])])).backward()
        for layer in layers:
            lin = module[int(layer)]
            ref = torch.cat([lin.weight.grad.reshape(-1), lin.bias.grad.reshape(-1)]).numpy()
            np.testing.assert_allclose(grads[layer][i], ref, rtol=1e-5, atol=1e-6)
    module.zero_grad()
    assert access.queries == 2


def test_white_box_activations_and_parameters():
    model, (x, _) = _mlp(), _xy()
    access = TargetAccess(model, THREAT_MODELS.get("white-box"), input_shape=(4,))
    acts = access.activations(x)
    assert len(acts) == sum(isinstance(m, nn.Linear) for m in model.module.modules()) == 3
    assert [a.shape for a in acts] == [(5, 8), (5, 6), (5, 3)]
    np.testing.assert_allclose(softmax(acts[-1]), model.predict_proba(x), rtol=1e-5, atol=1e-6)
    params = access.parameters()
    assert set(params) == {n for n, _ in model.module.named_parameters()}
    assert all(isinstance(v, np.ndarray) for v in params.values())


def test_white_box_is_denied_under_gray_box_and_without_a_torch_model():
    x, y = _xy()
    gray = TargetAccess(_mlp(), THREAT_MODELS.get("gray-box"), input_shape=(4,))
    for call in (lambda: gray.losses(x, y), lambda: gray.gradients(x, y), lambda: gray.activations(x), gray.parameters):
        with pytest.raises(AccessDeniedError, match="white-box"):
            call()
    assert gray.queries == 0

    class NotTorch:
        def predict_proba(self, x):
            return np.full((len(x), 3), 1 / 3)

    white = TargetAccess(NotTorch(), THREAT_MODELS.get("white-box"), input_shape=(4,))
    assert ModelBackend(NotTorch()).module is None
    with pytest.raises(AccessDeniedError, match="in-process torch model"):
        white.losses(x, y)


# -- audits ----------------------------------------------------------------------------------


def test_top3_audit_skips_full_vector_attacks_and_runs_ml_leaks(tmp_path):
    result = run_audit(AuditConfig(**FAST, output="top3"), progress=False)
    assert result.threat is not None and result.threat.name == "gray-box+top3"
    ran = {o.result.attack for o in result.outcomes}
    assert {"ml-leaks-1", "ml-leaks-3", "correctness"} <= ran
    assert "loss" in result.skipped and "probabilities" in result.skipped["loss"]
    assert "shadow-training" in result.skipped
    summary = result_summary(result)
    assert summary["threat_model"] == "gray-box+top3"
    assert summary["threat"]["top_k"] == 3


def test_budget_too_small_skips_the_attack_with_the_count():
    result = run_audit(AuditConfig(**FAST, attacks=("correctness", "loss"), query_budget=10), progress=False)
    assert result.outcomes == []
    for name in ("correctness", "loss"):
        assert "budget of 10" in result.skipped[name], result.skipped


def test_budget_large_enough_runs_and_price_gives_cost(tmp_path):
    config = AuditConfig(**FAST, attacks=("correctness", "loss"), query_budget=100_000, price_per_query=0.01)
    result = run_audit(config, progress=False)
    assert {o.result.attack for o in result.outcomes} == {"correctness", "loss"}
    json_path, _ = write_results(result, tmp_path)
    summary = json.loads(json_path.read_text())
    for name in ("correctness", "loss"):
        att = summary["attacks"][name]
        assert att["queries"] > 0
        assert att["cost"] == pytest.approx(att["queries"] * 0.01)
    assert summary["config"]["price_per_query"] == 0.01
    assert summary["threat"]["query_budget_per_attack"] == 100_000


def test_no_price_no_cost():
    result = run_audit(AuditConfig(**FAST, attacks=("correctness",)), progress=False)
    att = result_summary(result)["attacks"]["correctness"]
    assert att["queries"] == len(result.record_indices) and "cost" not in att


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "miaudit", *args], check=False, capture_output=True, text=True, timeout=600)


def test_cli_flags(tmp_path):
    proc = _cli("audit", "--dataset", "digits", "--attacks", "correctness", "--output", "label", "--query-budget", "100000",
                "--price-per-query", "0.5", "--epochs", "3", "--bootstrap", "0", "--no-cache", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "queries/record" in proc.stdout and "gray-box+label" in proc.stdout
    summary = json.loads((tmp_path / "results.json").read_text())
    att = summary["attacks"]["correctness"]
    assert att["cost"] == pytest.approx(att["queries"] * 0.5)


@pytest.mark.parametrize("args, fragment", [(["--output", "top0"], "k >= 1"), (["--price-per-query", "-1"], "price per query")])
def test_cli_bad_overrides_exit_2(args, fragment):
    proc = _cli("audit", "--dataset", "digits", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
