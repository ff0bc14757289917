"""A served language model (`miaudit serve-text`, :mod:`miaudit.text.lm_server`) and its client
(:class:`miaudit.text.lm_endpoint.LMEndpoint`): a tiny GPT saved as a Hugging Face folder, served
by a real uvicorn server on loopback (in a thread, with the hardened transport of `miaudit serve`),
gives the statistics the folder gives, and `audit-text --endpoint` the scores `--model-dir` gives.
Hostile answers, a wrong key and over-large requests are one line and exit 2."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

from fastapi import FastAPI, Request  # noqa: E402 -- the fake servers' annotations must resolve at module level
from fastapi.responses import JSONResponse, Response  # noqa: E402

from miaudit.cli import main
from miaudit.targets.http_target import TargetAnswerError, TargetHttpError
from miaudit.text.lm import build_lm, conditional_token_statistics, load_lm, prefix_tokens_used, save_lm, token_frequencies, token_statistics, train_lm, train_tokenizer
from miaudit.text.lm_endpoint import LMEndpoint
from miaudit.text.lm_server import create_lm_app
from serving import serving
from text_helpers import documents

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny GPT (context 64) fine-tuned on 30 members, its folder and the documents."""
    docs = documents(110, seed=3)
    members, nonmembers, pool, public = docs[:30], docs[30:60], docs[60:70], docs[70:]
    tok = train_tokenizer(public, vocab_size=300, seed=0)
    model = train_lm(build_lm("tiny", len(tok), 0), tok, members, epochs=3, seed=0)
    out = tmp_path_factory.mktemp("served-lm") / "model"
    save_lm(model, tok, out)
    root = out.parent
    files = {}
    for name, part in (("members", members), ("nonmembers", nonmembers), ("pool", pool)):
        files[name] = root / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps({"text": d}) + "\n" for d in part))
    return out, files, (members, nonmembers, pool)


@pytest.fixture(scope="module")
def served(folder):
    model, tok = load_lm(folder[0])
    app = create_lm_app(model, tok, api_keys=[KEY], max_documents=8, max_request_chars=5000)
    with serving(app) as url:
        yield url, model, tok, app


def post(url, path, body, key=KEY):
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_served_statistics_equal_the_folders(served, folder):
    url, model, tok, app = served
    members, nonmembers, pool = folder[2]
    texts = [*members[:10], *nonmembers[:9]]  # 19 documents: three requests of at most 8
    endpoint = LMEndpoint(url, api_key=KEY)
    assert (endpoint.vocab_size, endpoint.context_length) == (len(tok), 64)
    remote, local = endpoint.token_statistics(texts), token_statistics(model, tok, texts)
    assert endpoint.requests == 4  # /v1/info and 3 batches
    for r, s in zip(remote, local, strict=True):
        assert r.n_tokens == s.n_tokens and np.array_equal(r.token_ids, s.token_ids)
        for name in ("logprob", "mean", "var"):
            assert np.allclose(getattr(r, name), getattr(s, name), rtol=0, atol=1e-12)
    prefix = " ".join(pool[:2])
    cond, used = endpoint.conditional_token_statistics(texts, prefix)
    assert used == prefix_tokens_used(model, tok, texts, prefix)
    for r, s in zip(cond, conditional_token_statistics(model, tok, texts, prefix), strict=True):
        assert np.allclose(r.logprob, s.logprob, rtol=0, atol=1e-12) and np.array_equal(r.token_ids, s.token_ids)
    assert np.array_equal(endpoint.token_frequencies(pool), token_frequencies(tok, pool))
    assert sum(app.state.queries.values()) == 2 * len(texts) + len(pool)


def test_audit_text_via_endpoint_scores_as_via_the_folder(served, folder, tmp_path):
    url = served[0]
    files = folder[1]
    own = ["--train", str(files["members"]), "--test", str(files["nonmembers"]), "--pool-file", str(files["pool"]), "--quiet", "--no-report"]
    assert main(["audit-text", "--model-dir", str(folder[0]), *own, "--out", str(tmp_path / "dir")]) == 0
    assert main(["audit-text", "--endpoint", url, "--api-key", KEY, *own, "--out", str(tmp_path / "url")]) == 0
    by_dir = json.loads((tmp_path / "dir" / "results.json").read_text())
    by_url = json.loads((tmp_path / "url" / "results.json").read_text())
    assert set(by_url["attacks"]) == set(by_dir["attacks"]) >= {"loss", "zlib", "min-k", "min-k-plus-plus", "recall", "dc-pdd"}
    a = np.genfromtxt(tmp_path / "dir" / "scores.csv", delimiter=",", names=True)
    b = np.genfromtxt(tmp_path / "url" / "scores.csv", delimiter=",", names=True)
    for name in a.dtype.names:
        assert np.allclose(a[name], b[name], rtol=1e-12, atol=1e-12), name
    assert all(by_url["attacks"][n]["auc"] == pytest.approx(by_dir["attacks"][n]["auc"]) for n in by_dir["attacks"])
    text = (tmp_path / "url" / "results.json").read_text()
    assert by_url["target"]["source"] == "endpoint" and by_url["target"]["endpoint"] == url and KEY not in text
    assert by_url["threat_model"].startswith("black-box API (token log-probabilities")
    assert by_dir["threat_model"].startswith("gray-box") and by_url["config"]["endpoint"] == url


def test_reference_base_gives_lira_and_rmia_on_an_endpoint_as_on_the_folder(served, folder, tmp_path, capsys):
    url, _, tok, _ = served
    files = folder[1]
    base = tmp_path / "base"
    save_lm(build_lm("tiny", len(tok), 0), tok, base)  # the start the served model was trained from
    own = ["--train", str(files["members"]), "--test", str(files["nonmembers"]), "--pool-file", str(files["pool"]), "--reference-base",
           str(base), "--references", "2", "--epochs", "3", "--attacks", "lira,rmia,rmia-offline,reference,loss", "--quiet", "--no-report"]  # fmt: skip
    assert main(["audit-text", "--model-dir", str(folder[0]), *own, "--out", str(tmp_path / "dir")]) == 0
    assert main(["audit-text", "--endpoint", url, "--api-key", KEY, *own, "--out", str(tmp_path / "url")]) == 0
    by_url = json.loads((tmp_path / "url" / "results.json").read_text())
    assert set(by_url["attacks"]) == {"lira", "rmia", "rmia-offline", "reference", "loss"}
    assert by_url["attacks"]["lira"]["details"]["reference_models"] == 2 and by_url["target"]["reference_base"] == str(base)
    a = np.genfromtxt(tmp_path / "dir" / "scores.csv", delimiter=",", names=True)
    b = np.genfromtxt(tmp_path / "url" / "scores.csv", delimiter=",", names=True)
    for name in a.dtype.names:  # the same references (cached), the same target statistics over HTTP
        assert np.allclose(a[name], b[name], rtol=1e-9, atol=1e-9), name
    foreign = tmp_path / "foreign"
    other = train_tokenizer(documents(80, seed=9), vocab_size=280, seed=0)
    save_lm(build_lm("tiny", len(other), 0), other, foreign)
    args = ["--endpoint", url, "--api-key", KEY, *own, "--out", str(tmp_path / "bad")]
    args[args.index(str(base))] = str(foreign)
    capsys.readouterr()
    assert "another tokenizer than the --endpoint's model" in _one_line_exit_2(capsys, args)


def _one_line_exit_2(capsys, args):
    assert main(["audit-text", *args, "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_wrong_key_unreachable_and_exclusive_flags_are_one_line(served, folder, tmp_path, capsys):
    url, files = served[0], folder[1]
    docs = ["--train", str(files["members"]), "--test", str(files["nonmembers"]), "--out", str(tmp_path / "o")]
    assert "API key" in _one_line_exit_2(capsys, ["--endpoint", url, "--api-key", "wrong", *docs])
    assert "API key" in _one_line_exit_2(capsys, ["--endpoint", url, *docs])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert "cannot reach" in _one_line_exit_2(capsys, ["--endpoint", f"http://127.0.0.1:{free}", *docs])
    assert "exclusive" in _one_line_exit_2(capsys, ["--endpoint", url, "--model-dir", str(folder[0]), *docs])
    assert "credentials" in _one_line_exit_2(capsys, ["--endpoint", f"http://u:{KEY}@127.0.0.1:{free}", *docs])


def test_the_server_refuses_bad_and_over_large_requests(served):
    url = served[0]
    assert post(url, "/v1/logprobs", {"documents": ["a document"]}, key=None)[0] == 401
    assert post(url, "/v1/logprobs", {"documents": ["x"] * 9})[0] == 413  # max_documents 8
    status, body = post(url, "/v1/logprobs", {"documents": ["y" * 3000, "z" * 3000]})  # max_request_chars 5000
    assert status == 413 and "5000" in body["error"]
    assert post(url, "/v1/logprobs", {"documents": [3]})[0] == 422
    assert post(url, "/v1/logprobs", {"documents": ["a"]})[0] == 422  # one token: nothing predicted
    assert post(url, "/v1/tokenize", {"documents": ["abc"], "prefix": "p"})[0] == 422
    big = b'{"documents": ["' + b"w" * (5000 * 12 + (64 << 10)) + b'"]}'
    req = urllib.request.Request(url + "/v1/logprobs", data=big, headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 413
    status, body = post(url, "/v1/logprobs", {"documents": ["a short document", "another one here"]})
    assert status == 200 and [d["n_tokens"] for d in body["documents"]] == [len(d["token_ids"]) for d in body["documents"]]


def _fake_app(answer):
    """A server that says it is a serve-text server and answers ``answer(documents)``."""
    app = FastAPI()

    @app.get("/v1/info")
    async def info() -> JSONResponse:
        return JSONResponse({"kind": "causal-lm", "vocab_size": 300, "distribution_size": 300, "context_length": 64, "max_documents": 8,
                             "max_document_chars": 10000, "max_request_chars": 100000})  # fmt: skip

    @app.post("/v1/logprobs")
    async def logprobs(request: Request) -> Response:
        body = await request.json()
        args = (body["documents"], body["prefix"]) if "prefix" in body else (body["documents"],)
        return Response(answer(*args), media_type="application/json")

    return app


def _row(n=4, **change):
    row = {"token_ids": list(range(5, 5 + n)), "n_tokens": n, "logprob": [-1.0] * (n - 1), "mean": [-2.0] * (n - 1), "var": [0.5] * (n - 1)}
    return {**row, **change}


HOSTILE = {
    "nan": lambda docs: '{"documents": [' + ",".join(json.dumps(_row()).replace("-1.0,", "NaN,", 1) for _ in docs) + "]}",
    "short": lambda docs: json.dumps({"documents": [_row(logprob=[-1.0]) for _ in docs]}),
    "count": lambda docs: json.dumps({"documents": [_row() for _ in docs[1:]]}),
    "ids": lambda docs: json.dumps({"documents": [_row(token_ids=[1, 2, 3, 999]) for _ in docs]}),
    "positive": lambda docs: json.dumps({"documents": [_row(logprob=[0.5, -1.0, -1.0]) for _ in docs]}),
    "entropy": lambda docs: json.dumps({"documents": [_row(mean=[-2.0, -9.0, -2.0]) for _ in docs]}),  # below -log 300
    "n_tokens": lambda docs: json.dumps({"documents": [_row(n_tokens=5) for _ in docs]}),
    "variance": lambda docs: json.dumps({"documents": [_row(var=[0.1, -3.0, 0.2]) for _ in docs]}),
    "not json": lambda docs: "<html>hello</html>",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_answer_is_one_line_and_exit_2(kind, folder, tmp_path, capsys):
    files = folder[1]
    with serving(_fake_app(HOSTILE[kind])) as url:
        with pytest.raises(TargetAnswerError):
            LMEndpoint(url).token_statistics(["one document", "two documents"])
        message = _one_line_exit_2(capsys, ["--endpoint", url, "--train", str(files["members"]), "--test", str(files["nonmembers"]),
                                            "--attacks", "loss", "--out", str(tmp_path / "o")])  # fmt: skip
    assert url in message


def test_conditional_answers_are_checked_against_the_context_and_the_first_answer():
    def answer(docs, prefix=None):
        if prefix is None:
            return json.dumps({"documents": [_row() for _ in docs]})
        shift = {"ids": {"token_ids": [9, 8, 7, 6], "prefix_tokens": 1}, "room": {"prefix_tokens": 61}}[prefix]
        return json.dumps({"documents": [_row(**shift) for _ in docs]})

    with serving(_fake_app(answer)) as url:
        endpoint = LMEndpoint(url)
        endpoint.token_statistics(["a document"])
        with pytest.raises(TargetAnswerError, match="different token ids"):
            endpoint.conditional_token_statistics(["a document"], "ids")
        with pytest.raises(TargetAnswerError, match="prefix_tokens 61"):  # 4 + 61 tokens > the context of 64
            endpoint.conditional_token_statistics(["another"], "room")


def test_a_classifier_server_is_not_an_lm_server():
    app = FastAPI()

    @app.get("/v1/info")
    async def info() -> dict:
        return {"num_classes": 10, "output": {"level": "full"}}

    with serving(app) as url, pytest.raises(TargetHttpError, match="not a miaudit serve-text server"):
        LMEndpoint(url)


def test_serve_text_binds_before_loading_and_builds_the_app_it_was_asked_for(folder, tmp_path, capsys, monkeypatch):
    """The command: a port in use is one line and exit 2 before the folder is even looked at;
    otherwise the app it serves (on the transport `serve` uses) has the keys and bounds given."""
    from miaudit.targets import server_runtime

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve-text", str(tmp_path / "no-such-folder"), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in use" in err[0], err
    calls = []
    monkeypatch.setattr(server_runtime, "serve_announced", lambda app, sock, **bounds: calls.append((app, sock.getsockname(), bounds)))
    assert main(["serve-text", str(folder[0]), "--port", "0", "--api-key", KEY, "--max-documents", "3", "--timeout", "7"]) == 0
    (app, (host, _), bounds), = calls
    assert host == "127.0.0.1" and bounds["timeout"] == 7 and bounds["max_connections"] == 128
    with serving(app) as url:
        endpoint = LMEndpoint(url, api_key=KEY)
        assert (endpoint.context_length, endpoint.max_documents) == (64, 3)
        with pytest.raises(TargetHttpError, match="API key"):
            LMEndpoint(url, api_key="wrong")
