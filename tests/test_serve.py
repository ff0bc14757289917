"""The HTTP prediction server and client: a saved model folder served by a real uvicorn server on
loopback, queried by attacks through TargetAccess exactly as an in-process model."""

import json
from dataclasses import replace
import urllib.error
import urllib.request

import numpy as np
import pytest

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

from miaudit.attacks import ATTACKS, AttackerKnowledge, ModelSpec
from miaudit.data import load_dataset
from miaudit.errors import MiauditError
from miaudit.models import ArchConfig, TrainingRecipe, fit_classifier
from miaudit.targets.access import AccessDeniedError, TargetAccess
from miaudit.targets.http_target import HttpTarget, TargetHttpError
from miaudit.targets.model_dir import ModelDirError, load_model_dir, save_model_dir
from miaudit.targets.server import create_app
from miaudit.threat import THREAT_MODELS, OutputAccess, ThreatModel
from serving import serving
from synthetic import FAST_OPTIONS

OPTIONS = {"hidden": [16]}
RECIPE = TrainingRecipe(epochs=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = load_dataset("digits")
    x, y = data.x[:400], data.y[:400]
    clf = fit_classifier("mlp", x, y, num_classes=10, seed=0, recipe=RECIPE, options=OPTIONS, progress=False)
    folder = tmp_path_factory.mktemp("served") / "digits-mlp"
    save_model_dir(clf, ArchConfig("mlp", OPTIONS), folder, num_classes=10, input_shape=data.feature_shape)
    return data, clf, folder


def post(url, body, key=None, raw=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-Key"] = key
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url + "/v1/predict", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_model_dir_round_trip_gives_the_same_logits(trained):
    data, clf, folder = trained
    loaded = load_model_dir(folder)
    x = data.x[:50]
    assert np.array_equal(loaded.predict_logits(x), clf.predict_logits(x))
    assert loaded.input_shape == data.feature_shape and loaded.num_classes == 10
    meta = json.loads((folder / "model.json").read_text())
    assert meta["arch"]["name"] == "mlp" and meta["input_shape"] == list(data.feature_shape)


def test_corrupt_or_missing_model_dir_is_a_user_error(trained, tmp_path):
    data, _, folder = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text((folder / "model.json").read_text())
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[-5] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(ModelDirError, match="checksum"):
        load_model_dir(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match="missing"):
        load_model_dir(bad)
    (bad / "model.json").write_text("{not json")
    with pytest.raises(MiauditError, match="unreadable"):
        load_model_dir(bad)
    with pytest.raises(MiauditError, match="does not exist"):
        load_model_dir(tmp_path / "nowhere")
    sk = fit_classifier("logreg", data.x[:100], data.y[:100], num_classes=10, seed=0) if "logreg" in _names() else None
    if sk is not None:
        with pytest.raises(ModelDirError, match="pickle"):
            save_model_dir(sk, ArchConfig("mlp"), tmp_path / "sk", num_classes=10, input_shape=data.feature_shape)


def _names():
    from miaudit.models import model_names

    return model_names()


def test_attacks_over_http_score_exactly_as_in_process(trained):
    data, _, folder = trained
    clf = load_model_dir(folder)
    members, others = data.x[:100], data.x[1000:1100]
    x = np.concatenate([members, others])
    y = np.concatenate([data.y[:100], data.y[1000:1100]])
    gray = THREAT_MODELS.get("gray-box")
    knowledge = AttackerKnowledge.under(
        gray, num_classes=10, input_shape=data.feature_shape, seed=1,
        pool_x=data.x[500:900], pool_y=data.y[500:900], pool_fingerprint=None,
        target_model=ModelSpec("mlp", OPTIONS, RECIPE), n_shadow_models=2,
    )  # fmt: skip
    cases = [
        ("correctness", THREAT_MODELS.get("label-only")),
        ("ml-leaks-3", ThreatModel("top1", OutputAccess.TOP_K, top_k=1)),
        ("loss", gray),
    ]
    with serving(create_app(clf, output="full", max_batch=64)) as url:
        target = HttpTarget(url)
        assert target.output == OutputAccess.PROBABILITIES and target.input_shape == data.feature_shape
        for name, threat in cases:
            attack = ATTACKS.get(name)().fit(knowledge)
            local = attack.score(TargetAccess(clf, threat, input_shape=data.feature_shape), x, y)
            access = TargetAccess(target, threat, input_shape=data.feature_shape)
            remote = attack.score(access, x, y)
            assert np.array_equal(local.scores, remote.scores), name
            assert local.threshold == remote.threshold
            assert access.queries == len(x) + (1000 if name == "ml-leaks-3" else 0)
        assert target.requests > 0
    # a server releasing top-3 serves a top-1 attacker but refuses full vectors
    with serving(create_app(clf, output="top3")) as url:
        target = HttpTarget(url)
        attack = ATTACKS.get("ml-leaks-3")().fit(knowledge)
        threat = ThreatModel("top1", OutputAccess.TOP_K, top_k=1)
        local = attack.score(TargetAccess(clf, threat, input_shape=data.feature_shape), x, y)
        assert np.array_equal(local.scores, attack.score(target.access(threat), x, y).scores)
        with pytest.raises(AccessDeniedError):
            target.access(gray).predict_proba(x[:2])
        with pytest.raises(AccessDeniedError):
            target.access(ThreatModel("top5", OutputAccess.TOP_K, top_k=5)).predict_topk(x[:2])


def test_label_policy_never_releases_probabilities(trained):
    data, _, folder = trained
    clf = load_model_dir(folder)
    with serving(create_app(clf, output="label")) as url:
        for asked in (None, "full", "top1"):
            body = {"inputs": data.x[:5].reshape(5, -1).tolist()}
            if asked:
                body["output"] = asked
            status, text = post(url, body)
            assert "probabilit" not in text and "top_k" not in text
            if asked:
                assert status == 403
            else:
                assert status == 200
                assert json.loads(text)["labels"] == clf.predict(data.x[:5]).tolist()
        target = HttpTarget(url)
        access = TargetAccess(target, THREAT_MODELS.get("black-box"), input_shape=data.feature_shape)
        with pytest.raises(AccessDeniedError):
            access.predict_proba(data.x[:3])
        with pytest.raises(AccessDeniedError):
            access.predict_topk(data.x[:3])
        assert np.array_equal(access.predict_label(data.x[:20]), clf.predict(data.x[:20]))


def test_bad_requests_get_4xx_and_the_server_keeps_serving(trained):
    data, _, folder = trained
    clf = load_model_dir(folder)
    good = {"inputs": data.x[:3].reshape(3, -1).tolist()}
    with serving(create_app(clf, output="top2", max_batch=8, api_keys={"s3cret"}, max_body_bytes=50_000)) as url:
        bad = [
            ({"inputs": [[1.0] * 63]}, None, 422),  # wrong feature count
            ({"inputs": [["a"] * 64]}, None, 422),  # non-numeric
            ({"inputs": [[True] * 64]}, None, 422),  # booleans are not numbers
            ({"inputs": []}, None, 422),  # empty
            ({"inputs": [[0.0] * 64] * 9}, None, 413),  # batch over max_batch
            ({"records": []}, None, 422),  # wrong field
            (None, b'{"inputs": [[NaN' + b", 0" * 63 + b"]]}", 422),  # NaN
            (None, b'{"inputs": [[1e999' + b", 0" * 63 + b"]]}", 422),  # infinity
            (None, b"{not json", 422),
            (None, b'{"inputs": [' + b"0," * 40_000 + b"0]}", 413),  # body too large
        ]
        for body, raw, expected in bad:
            status, text = post(url, body, key="s3cret", raw=raw)
            assert status == expected, (text, body if raw is None else raw[:40])
            assert "error" in json.loads(text)
        assert post(url, good)[0] == 401  # no key
        assert post(url, good, key="wrong")[0] == 401
        with pytest.raises(TargetHttpError, match="API key"):
            HttpTarget(url)
        status, text = post(url, good, key="s3cret")
        assert status == 200
        answer = json.loads(text)
        assert set(answer) == {"labels", "top_k"} and np.shape(answer["top_k"]["probabilities"]) == (3, 2)
        target = HttpTarget(url, api_key="s3cret")
        assert target.k == 2 and target.max_batch == 8
        top, classes = target.access(ThreatModel("top2", OutputAccess.TOP_K, top_k=2)).predict_topk(data.x[:20])
        assert top.shape == classes.shape == (20, 2)  # split into batches of 8
        with urllib.request.urlopen(url + "/openapi.json", timeout=10) as resp:
            assert "/v1/predict" in json.loads(resp.read())["paths"]


def test_records_may_be_flat_or_shaped_like_the_input():
    from miaudit.targets.server import _BadRequest, parse_inputs, parse_output_policy

    flat = [[float(i) for i in range(6)]]
    shaped = [[[0.0, 1.0, 2.0], [3, 4, 5]]]
    for inputs in (flat, shaped):
        x = parse_inputs({"inputs": inputs}, (2, 3), 4)
        assert x.shape == (1, 2, 3) and x.dtype == np.float32 and x[0, 1, 2] == 5
    for inputs in ([[[0.0, 1.0], [2.0, 3.0, 4.0]]], [[0.0] * 5], [[[0.0, 1.0, "x"], [3, 4, 5]]], [[1e300] * 6]):
        with pytest.raises(_BadRequest):
            parse_inputs({"inputs": inputs}, (2, 3), 4)
    assert parse_output_policy("top3", 10).k == 3
    for bad in ("top0", "top11", "probs"):
        with pytest.raises(MiauditError):
            parse_output_policy(bad, 10)


def test_queries_are_counted_per_key_in_records(trained, caplog):
    data, _, folder = trained
    app = create_app(load_model_dir(folder), output="label", api_keys=["a", "b"])
    with caplog.at_level("INFO", logger="miaudit.server"), serving(app) as url:
        HttpTarget(url, api_key="a").access(THREAT_MODELS.get("label-only")).predict_label(data.x[:7])
        HttpTarget(url, api_key="b").access(THREAT_MODELS.get("label-only")).predict_label(data.x[:3])
        HttpTarget(url, api_key="a").access(THREAT_MODELS.get("label-only")).predict_label(data.x[:2])
    from miaudit.targets.server import key_id

    assert app.state.queries == {key_id("a"): 9, key_id("b"): 3}
    assert any("9 in total" in r.getMessage() for r in caplog.records)
    assert not any("'a'" in r.getMessage() or " a " in r.getMessage() for r in caplog.records)  # keys are not logged


@pytest.mark.parametrize("threat_model, policy", [("black-box", "top3"), ("gray-box", "full")])
def test_audit_of_a_served_target_equals_the_in_process_audit(tmp_path, threat_model, policy):
    """`audit --target URL` runs every permitted attack (metric, ML-Leaks, shadow, NN) unchanged."""
    from miaudit.experiments import AuditConfig, run_audit
    from miaudit.targets.model_dir import load_model_dir
    from miaudit.targets.server import create_app

    # every permitted attack, the costly ones with fewer queries / epochs (same algorithms)
    local = AuditConfig(dataset="digits", recipe={"epochs": 3}, threat_model=threat_model, n_bootstrap=0, n_shadow_models=2,
                        attack_options=FAST_OPTIONS, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    base = run_audit(local, progress=False)
    folder = tmp_path / "model"
    data = base.dataset
    save_model_dir(base.target, ArchConfig(base.model_name, base.model_options), folder,
                   num_classes=data.num_classes, input_shape=data.feature_shape)  # fmt: skip
    with serving(create_app(load_model_dir(folder), output=policy)) as url:
        remote = run_audit(replace(local, target_url=url), progress=False)
    # narrowed to what the server releases; no attack permitted locally needs more than that here
    assert remote.threat.name == (threat_model if policy == "full" else f"{threat_model}+{policy}")
    # Locally, attacks whose scores need only the full vector run uncalibrated under black box, and
    # black-box attacks that need it (qmia) run as they are; a server releasing the top 3 does not
    # give it, so exactly those are skipped remotely.
    from miaudit.attacks import ATTACKS
    from miaudit.threat import OutputAccess

    def _needs_full_vector(name):
        attack = ATTACKS.get(name)
        return attack.uncalibrated_requirements is not None or attack.requirements.output == OutputAccess.PROBABILITIES

    needs_full = {n for n in set(remote.skipped) - set(base.skipped) if _needs_full_vector(n)}
    assert set(remote.skipped) == set(base.skipped) | needs_full
    assert (policy == "full") == (not needs_full)
    assert remote.train_accuracy == base.train_accuracy and remote.test_accuracy == base.test_accuracy
    local_scores = {o.result.attack: o.result.scores for o in base.outcomes}
    ran = [o.result.attack for o in remote.outcomes]
    expected = {"correctness", "ml-leaks-2", "ml-leaks-3"}
    if policy == "full":
        expected |= {"loss", "loss-class", "confidence", "entropy", "modified-entropy", "ml-leaks-1", "shadow-training", "nn"}
    assert expected <= set(ran)
    for o in remote.outcomes:
        np.testing.assert_array_equal(o.result.scores, local_scores[o.result.attack])
    assert remote.record().summary["target"]["source"].startswith("served model at")
