"""`miaudit serve` under slow, stalled, disconnecting and excess clients, and `audit --target`
against a server that answers nonsense. Loopback only; a few hundred connections for seconds.

The real server runs as a subprocess (`python -m miaudit serve`), so that its stderr and its
RSS (/proc/PID/status) can be read.
"""

import json
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

from miaudit.cli import main
from miaudit.data import load_dataset
from miaudit.models import ArchConfig, TrainingRecipe, fit_classifier
from miaudit.targets.model_dir import load_model_dir, save_model_dir

SRC = str(Path(__file__).resolve().parents[1] / "src")
TIMEOUT = 2.0  # the server's --timeout in these tests
SLACK = 1.5  # seconds allowed beyond it for a closed connection to be seen (loaded machine)
RSS_GROWTH_MB = 50


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    data = load_dataset("digits")
    clf = fit_classifier("mlp", data.x[:200], data.y[:200], num_classes=10, seed=0, recipe=TrainingRecipe(epochs=1),
                         options={"hidden": [16]}, progress=False)  # fmt: skip
    folder = tmp_path_factory.mktemp("hardening") / "digits-mlp"
    save_model_dir(clf, ArchConfig("mlp", {"hidden": [16]}), folder, num_classes=10, input_shape=data.feature_shape)
    return data, folder


def _env():
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):
    """A `miaudit serve` subprocess: (url, pid, path of its stderr)."""
    _, folder = model_dir
    log = tmp_path_factory.mktemp("serve-log") / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "miaudit", "serve", str(folder), "--output", "full", "--port", "0",
             "--timeout", str(TIMEOUT), "--max-connections", "400", "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=err, env=_env(),
        )  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None:
            text = log.read_text(errors="replace")
            m = re.search(r"serving on (http://127\.0\.0\.1:\d+)", text)
            if m and "Application startup complete" in text:
                url = m.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"miaudit serve did not start:\n{text}")
            else:
                time.sleep(0.1)
        yield url, proc.pid, log
    finally:
        proc.terminate()
        proc.wait(20)


def _predict(url, x):
    body = json.dumps({"inputs": x.reshape(len(x), -1).tolist()}).encode()
    req = urllib.request.Request(url + "/v1/predict", data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _host_port(url):
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


HEAD = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"


def test_slow_and_stalled_clients_are_closed_and_others_still_served(served, model_dir):
    url, pid, log = served
    data, folder = model_dir
    x = data.x[:5]
    expected = load_model_dir(folder).predict_proba(x)
    for _ in range(3):  # warm up before measuring memory
        _predict(url, x)
    rss_before = _rss_mb(pid)

    # 260 clients: 100 trickle a body a byte at a time, 100 stall after their headers,
    # 60 stall in the middle of their headers.
    kinds = ["trickle"] * 100 + ["stall-body"] * 100 + ["stall-headers"] * 60
    selector = selectors.DefaultSelector()
    opened, answers, closed_after = {}, {}, {}
    for i, kind in enumerate(kinds):
        s = socket.create_connection(_host_port(url), timeout=5)
        s.sendall(HEAD[:30] if kind == "stall-headers" else HEAD)
        s.setblocking(False)
        opened[s] = (kind, time.monotonic())
        answers[s] = b""
        selector.register(s, selectors.EVENT_READ)

    good, failures, rss_peak = [0], [], [rss_before]
    stop = threading.Event()

    def normal_client():
        while not stop.is_set():
            try:
                answer = _predict(url, x)
                assert answer["labels"] == expected.argmax(axis=1).tolist()
                np.testing.assert_allclose(answer["probabilities"], expected, rtol=0, atol=1e-6)
                good[0] += 1
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(repr(exc))
            rss_peak.append(_rss_mb(pid))
            time.sleep(0.05)

    client = threading.Thread(target=normal_client)
    client.start()
    try:
        deadline = time.monotonic() + TIMEOUT + SLACK + 3
        next_trickle = time.monotonic()
        while opened and time.monotonic() < deadline:
            if time.monotonic() >= next_trickle:
                for s, (kind, _) in list(opened.items()):
                    if kind == "trickle":
                        try:
                            s.send(b"0")
                        except OSError:
                            pass  # closed by the server: seen below
                next_trickle = time.monotonic() + 0.2
            for key, _ in selector.select(timeout=0.05):
                s = key.fileobj
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    answers[s] += chunk
                    continue
                kind, start = opened.pop(s)
                closed_after[kind] = max(closed_after.get(kind, 0.0), time.monotonic() - start)
                selector.unregister(s)
                s.close()
        time.sleep(0.3)  # a few more normal queries after the load
    finally:
        stop.set()
        client.join(15)
        for s in opened:
            s.close()
    rss_after = _rss_mb(pid)
    print(f"\n260 slow connections, --timeout {TIMEOUT:g}: slowest closed after {closed_after} s; "
          f"{good[0]} normal answers; RSS {rss_before:.1f} MB before, {max(rss_peak):.1f} peak, {rss_after:.1f} after")  # fmt: skip

    assert not opened, f"{len(opened)} stalled connections still open: {sorted({k for k, _ in opened.values()})}"
    assert max(closed_after.values()) <= TIMEOUT + SLACK
    body_stalled = [a for a in answers.values() if a.startswith(b"HTTP/1.1 408")]
    assert len(body_stalled) == 200  # trickled and stalled bodies get 408 and a reason
    assert all(b"did not arrive within 2 s" in a for a in body_stalled)
    assert not failures and good[0] >= 10, failures[:3]
    assert rss_after - rss_before < RSS_GROWTH_MB
    assert "Traceback" not in log.read_text()


def test_a_client_disconnecting_mid_request_is_one_log_line(served):
    url, _, log = served
    before = log.read_text()
    with socket.create_connection(_host_port(url), timeout=5) as s:
        s.sendall(HEAD + b'{"inputs": [[0, 0')
        time.sleep(0.2)
    with socket.create_connection(_host_port(url), timeout=5) as s:  # gone in the middle of the headers
        s.sendall(HEAD[:40])
    deadline = time.monotonic() + 5
    while "disconnected before" not in log.read_text()[len(before):] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    new = log.read_text()[len(before):]
    assert [line for line in new.splitlines() if "disconnected before" in line] == [
        line for line in new.splitlines() if line.strip()
    ], new
    assert len(new.strip().splitlines()) == 1 and "17 bytes received" in new
    assert "Traceback" not in log.read_text()


def test_port_in_use_is_one_line_and_exit_2(model_dir, capsys):
    _, folder = model_dir
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc = main(["serve", str(folder), "--output", "full", "--port", str(port)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.strip() == f"error: port {port} on 127.0.0.1 is in use; choose another with --port"


def test_connections_beyond_the_cap_get_503_and_the_cap_frees_itself(model_dir):
    """In-process, with the same transport as `miaudit serve`: 5 stalled connections fill a cap of 5."""
    from miaudit.targets.server import create_app
    from miaudit.targets.server_runtime import bind_socket, make_server

    data, folder = model_dir
    sock = bind_socket("127.0.0.1", 0)
    server = make_server(create_app(load_model_dir(folder), output="label"), sock, timeout=1.0, max_connections=5, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        stalled = [socket.create_connection(_host_port(url), timeout=5) for _ in range(5)]
        time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as busy:
            _predict(url, data.x[:2])
        assert busy.value.code == 503 and "limit of 5 connections" in json.loads(busy.value.read())["error"]
        # A client that sends its request after the 503 was written still reads the 503: the refused
        # connection drains the request before closing (a close with it unread resets the connection).
        late = socket.create_connection(_host_port(url), timeout=5)
        time.sleep(0.3)
        body = json.dumps({"inputs": data.x[:2].tolist()}).encode()
        late.sendall(b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
        time.sleep(0.2)  # as urllib does: the body in a second send, which a reset connection refuses
        late.sendall(body)
        answer = b""
        while chunk := late.recv(4096):
            answer += chunk
        late.close()
        assert answer.startswith(b"HTTP/1.1 503 ") and b"limit of 5 connections" in answer
        time.sleep(1.0 + SLACK)  # the stalled ones are closed after --timeout
        assert all(s.recv(10) == b"" for s in stalled)
        assert len(_predict(url, data.x[:2])["labels"]) == 2
        for s in stalled:
            s.close()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# --------------------------------------------------------------------------- a hostile server


INFO = {"api_version": "v1", "num_classes": 3, "input_shape": [4], "num_features": 4,
        "output": {"name": "full", "level": "full", "k": None}, "max_batch": 64}  # fmt: skip


class _Fake(BaseHTTPRequestHandler):
    info: dict = INFO
    answer = None  # records -> raw bytes of the /v1/predict answer

    def log_message(self, *args):  # quiet
        pass

    def _send(self, raw):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        self._send(json.dumps(type(self).info).encode())

    def do_POST(self):
        n = len(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"])
        self._send(type(self).answer(n))


@contextmanager
def fake_server(info, answer):
    handler = type("Handler", (_Fake,), {"info": info, "answer": staticmethod(answer)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _full(labels, rows):
    return lambda n: json.dumps({"labels": [labels] * n, "probabilities": [rows] * n}).encode()


GOOD = [0.7, 0.2, 0.1]
HOSTILE = {
    "logits as probabilities": (INFO, _full(0, [5, -4, 1]), [], "outside [0, 1]"),
    "rows not summing to 1": (INFO, _full(0, [0.2, 0.2, 0.2]), [], "do not sum to 1"),
    "labels out of range": (INFO, _full(7, GOOD), [], "outside its 3 classes"),
    "top-k class twice": ({**INFO, "output": {"name": "top3", "level": "top-k", "k": 3}},
                          lambda n: json.dumps({"labels": [0] * n, "top_k": {"classes": [[0, 0, 2]] * n, "probabilities": [[0.7, 0.2, 0.1]] * n}}).encode(),
                          ["--threat-model", "black-box", "--attacks", "ml-leaks-3"], "a class twice"),
    "float labels": (INFO, _full(1.5, GOOD), [], "not class indices"),
    "NaN": (INFO, lambda n: b'{"labels": [0], "probabilities": [[NaN, 0.5, 0.5]]}', [], "not valid JSON"),
    "infinity": (INFO, lambda n: _full(0, [2.5, 0, 0])(n).replace(b"2.5", b"1e999"), [], "NaN or infinite"),
    "too few rows": (INFO, lambda n: json.dumps({"labels": [0] * (n - 1), "probabilities": [GOOD] * (n - 1)}).encode(), [], "labels for"),
    "wrong column count": (INFO, _full(0, [0.5, 0.5]), [], "classes, expected 3"),
    "huge answer": (INFO, lambda n: json.dumps({"labels": [0] * n, "probabilities": [GOOD] * n, "pad": "x" * 5000}).encode(),
                    ["--limit", "response_bytes=1k"], "--limit response_bytes="),
    "max_batch 0": ({**INFO, "max_batch": 0}, _full(0, GOOD), [], "max_batch is 0"),
    "max_batch a string": ({**INFO, "max_batch": "64"}, _full(0, GOOD), [], "max_batch is '64'"),
    "nested too deep": (INFO, lambda n: b'{"labels": ' + b"[" * 200 + b"]" * 200 + b"}", [], "nesting depth"),
    "top-k ascending": ({**INFO, "output": {"name": "top3", "level": "top-k", "k": 3}},
                        lambda n: json.dumps({"labels": [0] * n, "top_k": {"classes": [[0, 1, 2]] * n, "probabilities": [[0.1, 0.2, 0.7]] * n}}).encode(),
                        ["--threat-model", "black-box", "--attacks", "ml-leaks-3"], "do not descend"),
}  # fmt: skip


@pytest.fixture(scope="module")
def own_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(0)
    for name in ("train", "test"):
        np.savez(folder / f"{name}.npz", x=rng.normal(size=(40, 4)).astype(np.float32), y=np.arange(40) % 3)
    return folder


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_served_target_is_one_line_and_nothing_is_written(case, own_records, tmp_path, capsys):
    info, answer, extra, expected = HOSTILE[case]
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": true}')
    attacks = [] if "--attacks" in extra else ["--attacks", "loss"]
    with fake_server(info, answer) as url:
        rc = main(["audit", "--target", url, "--train", str(own_records / "train.npz"), "--test", str(own_records / "test.npz"),
                   "--out", str(out), "--bootstrap", "0", "--quiet", "--no-cache", *attacks, *extra])  # fmt: skip
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert url in lines[0] and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    assert (out / "results.json").read_text() == '{"earlier": true}'


def test_an_honest_fake_server_is_audited(own_records, tmp_path, capsys):
    """The checks refuse nothing a well-behaved server sends (the same fake, sane answers)."""
    rng = np.random.default_rng(1)

    def answer(n):
        p = rng.dirichlet(np.ones(3), size=n)
        return json.dumps({"labels": p.argmax(axis=1).tolist(), "probabilities": p.tolist()}).encode()

    with fake_server(INFO, answer) as url:
        rc = main(["audit", "--target", url, "--train", str(own_records / "train.npz"), "--test", str(own_records / "test.npz"),
                   "--out", str(tmp_path / "out"), "--bootstrap", "0", "--quiet", "--no-cache", "--attacks", "loss"])  # fmt: skip
    assert rc in (0, 1), capsys.readouterr().err
    assert (tmp_path / "out" / "results.json").exists()
