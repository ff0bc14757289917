"""An HTTP prediction API in front of a classifier, releasing only what its output policy allows.

``create_app(classifier, output="top3")`` returns a FastAPI app (it binds nothing; run it with
uvicorn, e.g. ``miaudit serve``):

- ``POST /v1/predict`` with ``{"inputs": [record, ...]}``, each record a flat list of the
  model's features or a nested list shaped like its input shape. Answers ``{"labels": [...]}``
  and, as the policy allows, ``"top_k": {"classes": [[...]], "probabilities": [[...]]}`` (the k
  largest probabilities, descending) or ``"probabilities": [[...]]`` (full vectors). A request
  may add ``"output": "label" | "topK" | "full"`` to ask for less than the policy releases.
  Under the ``label`` policy no probability ever leaves the server.
- ``GET /v1/info``: number of classes, input shape, output policy, largest batch, and whether
  released probability rows sum to 1 (clients check answers against it).
- ``/openapi.json`` and ``/docs`` come from FastAPI.

Bad requests get a 4xx answer with ``{"error": message}`` and the server keeps serving: a body
over ``max_body_bytes`` or a batch over ``max_batch`` 413, a body not received within
``read_timeout`` seconds 408 (both close the connection), malformed JSON, a non-numeric or
non-finite value or a wrong feature count 422, a missing or unknown API key 401 (when
``api_keys`` is given; send it as ``X-API-Key`` or ``Authorization: Bearer``), an output asked
beyond the policy 403. A client that disconnects mid-request is one log line. Queries are counted per API key in records (not requests), logged on the
``miaudit.server`` logger and kept in ``app.state.queries``. Deadlines on headers and the cap on
connections belong to the transport: :mod:`miaudit.targets.server_runtime`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from miaudit.errors import ConfigError
from miaudit.targets.access import top_k
from miaudit.threat import OutputAccess

logger = logging.getLogger("miaudit.server")

API_VERSION = "v1"
_POLICY = re.compile(r"^(label|full|top(\d+))$")
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class OutputPolicy:
    """What one answer releases: labels, the top ``k`` probabilities, or full vectors."""

    level: OutputAccess
    k: int | None = None

    @property
    def name(self) -> str:
        if self.level == OutputAccess.TOP_K:
            return f"top{self.k}"
        return "label" if self.level == OutputAccess.LABEL else "full"

    def allows(self, other: OutputPolicy) -> bool:
        if other.level > self.level:
            return False
        if other.level == OutputAccess.TOP_K and self.level == OutputAccess.TOP_K:
            return (other.k or 0) <= (self.k or 0)
        return True

    def to_dict(self) -> dict[str, Any]:
        level = {OutputAccess.LABEL: "label", OutputAccess.TOP_K: "top-k", OutputAccess.PROBABILITIES: "full"}[self.level]
        return {"name": self.name, "level": level, "k": self.k}


def parse_output_policy(text: str, num_classes: int) -> OutputPolicy:
    """``"label"``, ``"topK"`` (e.g. ``"top3"``, 1 <= K <= num_classes) or ``"full"``."""
    m = _POLICY.match(str(text).strip().lower())
    if not m:
        raise ConfigError(f"unknown output policy {text!r}; use label, topK (e.g. top3) or full")
    if m.group(1) == "label":
        return OutputPolicy(OutputAccess.LABEL)
    if m.group(1) == "full":
        return OutputPolicy(OutputAccess.PROBABILITIES)
    k = int(m.group(2))
    if not 1 <= k <= num_classes:
        raise ConfigError(f"output {text!r}: k must be between 1 and the number of classes ({num_classes})")
    return OutputPolicy(OutputAccess.TOP_K, k)


class BadRequest(Exception):
    """A request refused with HTTP ``status`` and a one-line ``message`` (the answer's ``error``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client disconnected before its request was complete."""


_BadRequest, _ClientGone = BadRequest, ClientGone  # the names this module used first

# After these the rest of the request is unread: the connection cannot carry another one.
_CLOSING = {408, 413}


def error_response(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` with ``status``; a 408 or 413 also closes the connection."""
    headers = {"Connection": "close"} if status in _CLOSING else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


_error = error_response


async def read_body(receive: Any, limit: int, timeout: float | None) -> bytes:
    """The request body from the ASGI ``receive``, at most ``limit`` bytes, all of it within
    ``timeout`` seconds (None: no deadline). :class:`_BadRequest` 413 or 408 otherwise;
    :class:`_ClientGone` when the client disconnects first."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = None if deadline is None else deadline - loop.time()
        try:
            if remaining is not None and remaining <= 0:
                raise asyncio.TimeoutError
            # A total deadline, not one per chunk: a byte a second must not keep the request alive.
            message = await asyncio.wait_for(receive(), remaining)
        except asyncio.TimeoutError:
            raise _BadRequest(408, f"the request body did not arrive within {timeout:g} s ({size} bytes came); send it at once") from None
        if message["type"] == "http.disconnect":
            raise _ClientGone(f"{size} bytes")
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise _BadRequest(413, f"request body over {limit} bytes; split the batch")
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _reject_constant(name: str) -> float:
    raise _BadRequest(422, f"inputs must be finite numbers, got {name}")


def key_id(key: str) -> str:
    """A short, non-secret name for an API key in logs and counts."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def check_api_keys(api_keys: Iterable[str] | None) -> list[str] | None:
    """The keys a server requires (None: none required); a ConfigError for an empty one."""
    keys = None if api_keys is None else [str(k) for k in api_keys]
    if keys is not None and any(not k for k in keys):
        raise ConfigError("API keys must not be empty")
    return keys


def authenticate_request(request: Request, keys: list[str] | None) -> str | None:
    """The caller's key id (:data:`ANONYMOUS` when ``keys`` is None), or None when a key is
    required and missing or wrong. The key comes as ``X-API-Key`` or ``Authorization: Bearer``."""
    if keys is None:
        return ANONYMOUS
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given:
        return None
    matched = False
    for k in keys:  # compare with every key, in constant time each
        matched |= hmac.compare_digest(given.encode(), k.encode())
    return key_id(given) if matched else None


def unauthorized() -> JSONResponse:
    """The 401 answer to a request without a valid API key."""
    resp = error_response(401, "this server needs an API key: send it in the X-API-Key header")
    resp.headers["WWW-Authenticate"] = "Bearer"
    return resp


async def read_json_request(request: Request, limit: int, timeout: float | None, who: str) -> Any:
    """The request's body parsed as JSON (no NaN or infinity): :class:`BadRequest` 413 for a
    body over ``limit`` bytes (announced or sent), 408 for one slower than ``timeout`` seconds,
    422 for one that is not JSON; :class:`ClientGone` (logged) when the client left first."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BadRequest(413, f"request body of {length} bytes; send at most {limit} (split the batch)")
    try:
        raw = await read_body(request.receive, limit, timeout)
    except ClientGone as gone:
        peer = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        logger.info("%s (%s) disconnected before its request was complete (%s received)", who, peer, gone)
        raise
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadRequest(422, "the body is not valid JSON") from None


def _record_values(record: Any, shape: tuple[int, ...], n_features: int, index: int) -> list[float]:
    """The record's numbers, flat; it may be flat or nested like ``shape``."""
    if isinstance(record, list) and len(record) == n_features and all(type(v) in (int, float) for v in record):
        return record
    out: list[float] = []

    def walk(value: Any, dims: tuple[int, ...]) -> None:
        if not dims:
            if type(value) not in (int, float):
                raise _BadRequest(422, f"record {index}: every value must be a number, got {json.dumps(value)[:40]}")
            out.append(value)
            return
        if not isinstance(value, list):
            raise _BadRequest(422, f"record {index}: expected a list, got {json.dumps(value)[:40]}")
        if len(value) != dims[0]:
            raise _BadRequest(
                422,
                f"record {index}: expected {n_features} features (flat) or a nested list shaped {list(shape)}, "
                f"got a list of {len(value)}",
            )
        for v in value:
            walk(v, dims[1:])

    if isinstance(record, list) and len(shape) > 1 and len(record) == n_features:
        walk(record, (n_features,))  # flat, but with a non-number: report that
    else:
        walk(record, shape)
    return out


def parse_inputs(payload: Any, input_shape: tuple[int, ...], max_batch: int) -> np.ndarray:
    """The request's records as float32 shaped ``(n, *input_shape)``; :class:`_BadRequest` if invalid."""
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise _BadRequest(422, 'the body must be a JSON object {"inputs": [[...], ...]}')
    inputs = payload["inputs"]
    if not isinstance(inputs, list):
        raise _BadRequest(422, '"inputs" must be a list of records')
    if not inputs:
        raise _BadRequest(422, '"inputs" is empty; send at least one record')
    if len(inputs) > max_batch:
        raise _BadRequest(413, f"{len(inputs)} records in one request; send at most {max_batch}")
    n_features = math.prod(input_shape)
    rows = [_record_values(r, input_shape, n_features, i) for i, r in enumerate(inputs)]
    try:
        x64 = np.asarray(rows, dtype=np.float64)
    except (OverflowError, ValueError):
        raise _BadRequest(422, "inputs must be finite numbers within float range") from None
    with np.errstate(over="ignore"):  # values beyond float32 become inf, rejected below
        x = x64.astype(np.float32)
    if not (np.isfinite(x64).all() and np.isfinite(x).all()):
        raise _BadRequest(422, "inputs must be finite numbers within float32 range (no NaN or infinity)")
    return x.reshape((len(rows), *input_shape))


def create_app(
    classifier: Any,
    *,
    output: str,
    max_batch: int = 1024,
    max_body_bytes: int | None = None,
    api_keys: Iterable[str] | None = None,
    input_shape: tuple[int, ...] | None = None,
    class_names: Iterable[str] = (),
    read_timeout: float | None = 30.0,
    rows_sum_to_one: bool = True,
) -> FastAPI:
    """A FastAPI app serving ``classifier`` (``predict_proba``, ``num_classes``, ``input_shape``).

    ``max_body_bytes`` defaults to room for ``max_batch`` records of 32 bytes per feature.
    ``api_keys``: when given (even empty), every request needs one of them.
    ``read_timeout``: seconds a request's body may take to arrive (None: no deadline).
    ``rows_sum_to_one``: whether released probability vectors sum to 1, as /v1/info tells
    clients (False behind an output defense such as rounding or top-k, which need not keep sums).
    """
    shape = tuple(int(d) for d in (input_shape if input_shape is not None else getattr(classifier, "input_shape", None) or ()))
    if not shape:
        raise ConfigError("the classifier has no input shape; pass input_shape=")
    num_classes = int(classifier.num_classes)
    policy = parse_output_policy(output, num_classes)
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ConfigError(f"max_batch must be a positive integer, got {max_batch!r}")
    n_features = math.prod(shape)
    body_limit = int(max_body_bytes) if max_body_bytes is not None else max(1 << 20, max_batch * n_features * 32 + (64 << 10))
    if body_limit < 1:
        raise ConfigError(f"max_body_bytes must be positive, got {max_body_bytes!r}")
    if read_timeout is not None and not 0 < float(read_timeout) < math.inf:
        raise ConfigError(f"read_timeout must be a positive number of seconds, got {read_timeout!r}")
    keys = check_api_keys(api_keys)
    names = [str(c) for c in class_names]
    lock = threading.Lock()

    app = FastAPI(
        title="miaudit prediction API",
        version=API_VERSION,
        description=f"Predictions of a {num_classes}-class model; output policy {policy.name}.",
    )
    app.state.queries = {}
    app.state.policy = policy

    def authenticate(request: Request) -> str | None:
        return authenticate_request(request, keys)

    def predict(x: np.ndarray, answer: OutputPolicy) -> dict[str, Any]:
        with lock:
            proba = np.asarray(classifier.predict_proba(x), dtype=np.float64)
        body: dict[str, Any] = {"labels": proba.argmax(axis=1).tolist()}
        if answer.level == OutputAccess.TOP_K:
            probs, classes = top_k(proba, int(answer.k or num_classes))
            body["top_k"] = {"classes": classes.tolist(), "probabilities": probs.tolist()}
        elif answer.level >= OutputAccess.PROBABILITIES:
            body["probabilities"] = proba.tolist()
        return body

    @app.get("/v1/info", summary="What the server releases and accepts")
    async def info(request: Request) -> JSONResponse:
        if authenticate(request) is None:
            return unauthorized()
        return JSONResponse(
            {
                "api_version": API_VERSION,
                "num_classes": num_classes,
                "input_shape": list(shape),
                "num_features": n_features,
                "output": policy.to_dict(),
                "max_batch": max_batch,
                "max_body_bytes": body_limit,
                "class_names": names,
                "auth_required": keys is not None,
                "rows_sum_to_one": bool(rows_sum_to_one),
            }
        )

    @app.post(
        "/v1/predict",
        summary="Predict a batch of records",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["inputs"],
                            "properties": {
                                "inputs": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": max_batch,
                                    "items": {"type": "array", "description": f"{n_features} numbers, flat or shaped {list(shape)}"},
                                },
                                "output": {"type": "string", "description": "label | topK | full, at most the server's policy"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def predict_endpoint(request: Request) -> JSONResponse:
        who = authenticate(request)
        if who is None:
            return unauthorized()
        try:
            try:
                payload = await read_json_request(request, body_limit, read_timeout, who)
            except _ClientGone:
                return _error(400, "disconnected")  # uvicorn sends nothing to a gone client
            answer = policy
            if isinstance(payload, dict) and "output" in payload:
                try:
                    answer = parse_output_policy(str(payload["output"]), num_classes)
                except ConfigError as exc:
                    raise _BadRequest(422, str(exc)) from None
                if not policy.allows(answer):
                    raise _BadRequest(403, f"output {answer.name!r} asked, this server releases at most {policy.name!r}")
            x = parse_inputs(payload, shape, max_batch)
        except _BadRequest as exc:
            logger.info("rejected request from %s: %s %s", who, exc.status, exc.message)
            return _error(exc.status, exc.message)
        body = await run_in_threadpool(predict, x, answer)
        total = app.state.queries.get(who, 0) + len(x)
        app.state.queries[who] = total
        logger.info("%s queried %d record(s), %d in total", who, len(x), total)
        return JSONResponse(body)

    return app
