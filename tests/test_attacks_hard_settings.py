"""Label-only attacks, BlindMI and the NSH white-box attack: access, query counts, refusals and
known answers on small synthetic targets (tests/synthetic.py covers every attack end to end)."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, AttackerKnowledge, ModelSpec
from miaudit.attacks.decision_boundary import SearchBudget, boundary_distances
from miaudit.attacks.mmd import SplitMMD, differential_comparison, multi_gaussian_kernel
from miaudit.attacks.perturbations import data_kind, flip_bits, image_augmentations, sobel_edges
from miaudit.data.split import SplitSizes, evaluation_records, known_members, make_split
from miaudit.errors import ConfigError
from miaudit.experiments import AuditConfig, run_audit
from miaudit.models import TrainingRecipe, fit_classifier
from miaudit.targets.access import ModelBackend, TargetAccess
from miaudit.threat import OutputAccess, derive
from synthetic import FAST_OPTIONS, write_synthetic

LABEL_ONLY = ("label-augmentation", "label-noise", "label-boundary")


class SpyBackend:
    """A query backend that records what each query asked for and how many rows."""

    def __init__(self, model):
        self.inner = ModelBackend(model)
        self.calls: list[tuple[OutputAccess, int]] = []

    def query(self, x, output, k):
        self.calls.append((output, len(x)))
        return self.inner.query(x, output, k)


@pytest.fixture(scope="module")
def memorizing_setting(tmp_path_factory):
    """A random forest memorizing random labels, and an attacker's pool from the same data."""
    path = write_synthetic(tmp_path_factory.mktemp("syn"), "memorizing", n=800)
    data = np.load(path)
    x, y = data["x"], data["y"]
    target = fit_classifier("random_forest", x, y, num_classes=10, seed=0, train_indices=np.arange(200))
    return x, y, target


@pytest.mark.parametrize("name", LABEL_ONLY)
def test_label_only_attacks_see_labels_only_and_report_their_queries(memorizing_setting, name):
    x, y, target = memorizing_setting
    threat = derive("gray-box", output="label")
    knowledge = AttackerKnowledge.under(
        threat, num_classes=10, input_shape=(8,), seed=1, pool_x=x[400:], pool_y=y[400:], pool_fingerprint=None,
        target_model=ModelSpec("random_forest", {}, TrainingRecipe()), n_shadow_models=2,
    )  # fmt: skip
    attack = ATTACKS.get(name)(**FAST_OPTIONS[name]).fit(knowledge)
    spy = SpyBackend(target)
    access = TargetAccess(spy, threat, input_shape=(8,))
    xs, ys = x[100:300], y[100:300]  # 100 members, 100 non-members
    result = attack.score(access, xs, ys)
    assert spy.calls and {output for output, _ in spy.calls} == {OutputAccess.LABEL}
    rows = sum(n for _, n in spy.calls)
    assert rows == access.queries == round(result.queries_per_record * len(ys))
    assert result.queries_per_record >= 2  # more than the gap attack's single query
    # The access object itself refuses anything more than labels under this threat model.
    with pytest.raises(Exception, match="labels only|does not release"):
        access.predict_topk(xs[:1])


def test_boundary_search_finds_the_distance_to_a_linear_boundary():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal(20), 0.3
    x = rng.standard_normal((300, 20))

    def labels_of(points):
        return (points.reshape(len(points), -1) @ w + b > 0).astype(np.int64)

    y = labels_of(x)
    y[:30] = 1 - y[:30]  # misclassified: distance 0
    budget = SearchBudget(max_iter=4, num_evals=60)
    dist, queries = boundary_distances(labels_of, x, y, low=np.full(20, -6.0), high=np.full(20, 6.0), budget=budget, rng=rng)
    truth = np.abs(x @ w + b) / np.linalg.norm(w)
    assert np.all(dist[:30] == 0) and np.all(queries[:30] == 1)
    rel = dist[30:] / truth[30:]
    assert np.all(rel >= 1 - 1e-6)  # a boundary point found is never nearer than the true boundary
    assert np.median(rel) < 1.2, np.median(rel)  # and the search gets close to it
    assert queries.max() <= budget.max_queries()


def test_mmd_moves_match_a_direct_recomputation():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((30, 3))
    k = multi_gaussian_kernel(z)
    side = rng.random(30) < 0.5

    def direct(s):
        a, b = s, ~s
        return k[np.ix_(a, a)].mean() + k[np.ix_(b, b)].mean() - 2 * k[np.ix_(a, b)].mean()

    mmd = SplitMMD(k, side)
    assert mmd.value() == pytest.approx(direct(side))
    flipped = mmd.after_flip()
    for i in range(30):
        s = side.copy()
        s[i] = not s[i]
        assert flipped[i] == pytest.approx(direct(s))
    mmd.flip(4)
    side[4] = not side[4]
    assert mmd.value() == pytest.approx(direct(side))


def test_differential_comparison_separates_two_clusters():
    rng = np.random.default_rng(2)
    members = rng.normal(0.9, 0.02, (40, 3))
    non = rng.normal(0.3, 0.05, (40, 3))
    reference = rng.normal(0.3, 0.05, (40, 3))
    z = np.concatenate([members, non, reference])
    side = np.r_[np.ones(80, bool), np.zeros(40, bool)]
    mmd = SplitMMD(multi_gaussian_kernel(z), side)
    differential_comparison(mmd, np.r_[np.ones(80, bool), np.zeros(40, bool)], both_ways=False)
    assert mmd.side[:40].all() and not mmd.side[40:80].any()
    gain = mmd.gain_as_a()
    assert (gain[:40] > 0).all() and (gain[40:80] < 0).all()


def test_perturbations():
    rng = np.random.default_rng(3)
    x = (rng.random((5, 50)) < 0.3).astype(np.float32)
    flipped = flip_bits(x, 4, rng)
    assert np.all((flipped != x).sum(axis=1) == 4) and data_kind(x) == "binary"
    assert data_kind(x + 0.5) == "continuous"
    images = rng.random((2, 3, 8, 8)).astype(np.float32)
    assert data_kind(images) == "image"
    augs = image_augmentations(images, 1)
    assert len(augs) == 10 and sum(np.array_equal(a, images) for a in augs) == 1
    assert np.allclose(sobel_edges(np.ones((1, 1, 6, 6), np.float32)), 0)


@pytest.mark.parametrize(
    "attack, threat, output, fragment",
    [
        ("label-noise", "label-only", None, "architecture"),
        ("label-boundary", "black-box", "label", "architecture"),
        ("nsh", "white-box", None, "partial training set"),
        ("nsh", "gray-box", "label", "white_box output"),
        ("blindmi-diff-w", "gray-box", "label", "top_k output"),
        ("blindmi-bi", "gray-box", "top2", "top-3"),
    ],
)
def test_attacks_are_refused_with_the_reason_under_the_wrong_threat_model(attack, threat, output, fragment):
    config = AuditConfig(dataset="no-data-needed", threat_model=threat, output=output, attacks=(attack,))
    with pytest.raises(ConfigError, match=fragment):
        run_audit(config, progress=False)  # refused before any data is loaded


def test_refusal_from_the_command_line_is_one_line_and_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "miaudit", "audit", "--dataset", "digits", "--output", "label", "--attacks", "nsh"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "needs white_box output" in proc.stderr


def test_label_output_runs_label_only_attacks_and_skips_the_rest(tmp_path):
    config = AuditConfig(
        dataset=str(write_synthetic(tmp_path, "memorizing", n=600)),
        model="random_forest",
        split=SplitSizes(0.25, 0.25, 0.5),
        threat_model="gray-box",
        output="label",
        n_shadow_models=2,
        n_bootstrap=0,
        use_cache=False,
        attack_options=FAST_OPTIONS,
    )
    result = run_audit(config, progress=False)
    ran = {o.result.attack for o in result.outcomes}
    assert ran == {"correctness", *LABEL_ONLY, "yoqo", "oslo"}
    assert "nsh" in result.skipped and "blindmi-bi" in result.skipped and "nn" in result.skipped
    for o in result.outcomes:
        assert o.queries == round(o.result.queries_per_record * len(result.is_member))


def test_unknown_attack_options_are_config_errors(tmp_path):
    config = AuditConfig(
        dataset=str(write_synthetic(tmp_path, "independent", n=200)), model="decision_tree", attacks=("label-noise",),
        threat_model="gray-box", output="label", attack_options={"label-noise": {"colour": "red"}}, use_cache=False,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="does not take options"):
        run_audit(config, progress=False)
    with pytest.raises(ConfigError, match="n_noise must be a whole number"):
        run_audit(replace(config, dataset="not-loaded", attack_options={"label-noise": {"n_noise": -1}}), progress=False)
    with pytest.raises(ConfigError, match="not run"):
        run_audit(AuditConfig(dataset="x", attacks=("correctness",), attack_options={"nn": {}}), progress=False)


def test_partial_knowledge_hands_known_members_and_evaluates_the_others():
    split = make_split(100, SplitSizes(40, 30, 30), seed=0)
    known = known_members(split, 0.5, seed=0)
    assert len(known) == 20 and np.isin(known, split.target_in).all()
    idx, member = evaluation_records(split, seed=0, exclude=known)
    assert not np.isin(known, idx).any() and member.sum() == 20 and (~member).sum() == 30
    kwargs = dict(num_classes=2, input_shape=(1,), seed=0, pool_x=np.zeros((3, 1)), pool_y=np.zeros(3, int),
                  pool_fingerprint=None, target_model=ModelSpec("mlp"), known_members_x=np.ones((2, 1)),
                  known_members_y=np.ones(2, int))  # fmt: skip
    assert AttackerKnowledge.under(derive("white-box"), **kwargs).known_members_x is None
    assert AttackerKnowledge.under(derive("white-box-partial"), **kwargs).known_members_x is not None


def test_partial_knowledge_audit_never_evaluates_known_members(tmp_path):
    config = AuditConfig(
        dataset=str(write_synthetic(tmp_path, "memorizing", n=400)), model="decision_tree", threat_model="white-box-partial",
        attacks=("correctness",), split=SplitSizes(100, 100, 200), n_bootstrap=0, use_cache=False,
    )  # fmt: skip
    result = run_audit(config, progress=False)
    known = known_members(result.split, config.known_member_fraction, seed=config.seed)
    assert len(known) == 50 and not np.isin(known, result.record_indices).any()
    assert result.is_member.sum() == 50 and (~result.is_member).sum() == 100


def test_layer_gradients_match_the_full_gradients_and_charge_per_record():
    import torch

    from miaudit.models import ArchConfig
    from miaudit.models.classifier import TorchClassifier
    from miaudit.models.train import new_model

    module = new_model(ArchConfig("mlp", {"hidden": [16, 8]}), (5,), 3, 0)
    access = TargetAccess(TorchClassifier(module, 3, (5,)), derive("white-box"), input_shape=(5,))
    x = np.random.default_rng(0).random((7, 5), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0])
    full = access.gradients(x, y)
    last = list(access.parameter_layers())[-1]
    part = access.gradients(x, y, layers=[last])
    assert list(part) == [last] and np.allclose(part[last], full[last], atol=1e-6)
    assert access.queries == 14
    # one record's gradient by plain autograd
    module.zero_grad()
    torch.nn.functional.cross_entropy(module(torch.from_numpy(x[:1])), torch.tensor(y[:1])).backward()
    w, b = module[-1].weight.grad.reshape(-1), module[-1].bias.grad
    assert np.allclose(part[last][0], torch.cat([w, b]).numpy(), atol=1e-6)
    with pytest.raises(Exception, match="unknown layers"):
        access.gradients(x, y, layers=["nope"])


def test_attack_options_from_the_command_line():
    from miaudit.cli.audit_cmd import parse_attack_options

    assert parse_attack_options(["blindmi-bi:batch_size=100", "label-noise:n_noise=30", "blindmi-bi:seed_fraction=0.3"]) == {
        "blindmi-bi": {"batch_size": 100, "seed_fraction": 0.3},
        "label-noise": {"n_noise": 30},
    }
    for bad in ("blindmi-bi", "blindmi-bi:batch_size", ":x=1"):
        with pytest.raises(ConfigError, match="ATTACK:KEY=VALUE"):
            parse_attack_options([bad])
