"""A target model behind a miaudit prediction server (:mod:`miaudit.targets.server`), over HTTP.

``HttpTarget(url)`` reads ``/v1/info`` and is a :class:`~miaudit.targets.access.QueryBackend`:
``TargetAccess(HttpTarget(url), threat, input_shape=...)`` (or ``target.access(threat)``) lets
attacks query the remote model exactly as an in-process one. A threat model asking for more
than the server releases gets :class:`AccessDeniedError`; nothing is ever made up. Batches
larger than the server's ``max_batch`` are split. The client uses only the standard library.

A server is not trusted more than a file: each answer is read up to ``--limit response_bytes``
and parsed as bounded JSON (:func:`miaudit.bounded_io.parse_json`), ``/v1/info`` must describe a
usable model, and every answer is checked as precomputed outputs are (one label per record,
within the classes; probabilities finite, in [0, 1], rows summing to 1 where the server says
they do; top-k rows descending over distinct classes). Anything else is one
:class:`TargetAnswerError` naming the server, before a metric is computed from it.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from miaudit.bounded_io import parse_json
from miaudit.errors import DataError, InputError, MiauditError
from miaudit.limits import MIB, LimitError, check_at_most, limits, use_limits
from miaudit.targets.access import AccessDeniedError, QueryAnswer, TargetAccess
from miaudit.targets.external import PROBABILITY_TOLERANCE, _check_outputs
from miaudit.threat import OutputAccess, ThreatModel

_LEVELS = {"label": OutputAccess.LABEL, "top-k": OutputAccess.TOP_K, "full": OutputAccess.PROBABILITIES}


class TargetHttpError(MiauditError):
    """The prediction server could not be reached or refused a request."""


class TargetAnswerError(TargetHttpError, DataError):
    """The prediction server answered something its protocol does not allow (a bad /v1/info,
    labels outside the classes, probabilities that are not probabilities, wrong shapes)."""


_ERROR_BYTES = 64 << 10  # an error answer is a message: no reason to read more of it


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's ``{"error": ...}`` (or FastAPI's ``detail``) message, else the HTTP reason."""
    try:
        body = parse_json(exc.read(_ERROR_BYTES) or b"{}", "error answer")
    except (MiauditError, OSError):
        body = {}
    if isinstance(body, dict):
        message = body.get("error") or body.get("detail")
        if message:
            return str(message)[:300]
    return str(exc.reason)


class HttpTarget:
    """Client of a miaudit prediction server at ``url`` (e.g. ``http://127.0.0.1:8000``)."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 30) -> None:
        self.url = str(url).rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise TargetHttpError(f"target URL {url!r} must start with http:// or https://")
        self.api_key = api_key
        self.k: int | None = None
        self.output = OutputAccess.LABEL
        self.requests = 0
        self.timeout = float(timeout)
        self.info = self._request("GET", "/v1/info")
        self._read_info(self.info)
        self.requests = 0

    def __repr__(self) -> str:
        k = f" k={self.k}" if self.k else ""
        return f"HttpTarget({self.url!r}, output={self.output.name.lower()}{k})"

    def _read_info(self, info: dict[str, Any]) -> None:
        """Take the model's description from ``/v1/info``, refusing one no client could use."""
        where = f"{self.url}/v1/info"
        try:
            output = info["output"]
            level = _LEVELS[output["level"]]
            shape, classes, k, batch = info["input_shape"], info["num_classes"], output.get("k"), info["max_batch"]
        except (KeyError, TypeError):
            raise TargetHttpError(f"{where} is not a miaudit prediction server's answer; check the URL") from None
        self.num_classes = _count(classes, f"{where}: num_classes", at_least=2)
        check_at_most("classes", self.num_classes, f"{where}: num_classes")
        if not isinstance(shape, list) or not shape:
            raise TargetAnswerError(f"{where}: input_shape must be a non-empty list of sizes, got {_shown(shape)}")
        self.input_shape = tuple(_count(d, f"{where}: input_shape", at_least=1) for d in shape)
        check_at_most("features", math.prod(self.input_shape), f"{where}: features per record")
        self.output = level
        self.k = _count(k, f"{where}: output k", at_least=1) if level == OutputAccess.TOP_K else None
        if self.k is not None and self.k > self.num_classes:
            raise TargetAnswerError(f"{where}: releases the top {self.k} of {self.num_classes} classes, which cannot be")
        # 0 would make the batching loop never advance; a string or float is no batch size either
        self.max_batch = _count(batch, f"{where}: max_batch", at_least=1)
        self.rows_sum_to_one = info.get("rows_sum_to_one", True) is not False

    def access(self, threat: ThreatModel) -> TargetAccess:
        """A :class:`TargetAccess` on this target under ``threat``."""
        return TargetAccess(self, threat, input_shape=self.input_shape)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return request_json(self.url, method, path, body, api_key=self.api_key, timeout=self.timeout)

    def _check_release(self, output: OutputAccess, k: int | None) -> None:
        if output <= OutputAccess.LABEL:
            return
        if self.output < output:
            what = "full probability vectors" if output >= OutputAccess.PROBABILITIES else f"top-{k} probabilities"
            released = "labels only" if self.output == OutputAccess.LABEL else f"top-{self.k} probabilities"
            raise AccessDeniedError(f"{self.url} releases {released}, not {what}")
        if output == OutputAccess.TOP_K and self.output == OutputAccess.TOP_K and (k or self.num_classes) > (self.k or 0):
            raise AccessDeniedError(f"{self.url} releases top-{self.k} probabilities, top-{k} asked")

    def query(self, x: np.ndarray, output: OutputAccess, k: int | None) -> QueryAnswer:
        """``(labels, probs, classes)`` for records ``x``, as :class:`QueryBackend` defines them."""
        self._check_release(output, k)
        x = np.asarray(x, dtype=np.float32)
        if output == OutputAccess.LABEL:
            ask = "label"
        elif output == OutputAccess.TOP_K:
            k = int(k if k is not None else self.num_classes)
            ask = f"top{k}"
        else:
            ask = "full"
        width = int(k) if output == OutputAccess.TOP_K else self.num_classes  # type: ignore[arg-type]
        labels, probs, classes = [], [], []
        for start in range(0, len(x), self.max_batch):
            batch = x[start : start + self.max_batch]
            flat = batch.reshape(len(batch), -1).astype(np.float64)  # float32 -> float64 -> JSON is exact
            answer = self._request("POST", "/v1/predict", {"inputs": flat.tolist(), "output": ask})
            self.requests += 1
            n = len(batch)
            labels.append(self._labels(answer.get("labels"), n))
            try:
                if output == OutputAccess.TOP_K:
                    top, cls = answer["top_k"]["probabilities"], answer["top_k"]["classes"]
                elif output >= OutputAccess.PROBABILITIES:
                    top, cls = answer["probabilities"], None
                else:
                    continue
            except (KeyError, TypeError):
                raise TargetAnswerError(f"{self.url} answered without the {ask} output it promised") from None
            probs.append(self._probabilities(top, n, width, full=cls is None))
            if cls is not None:
                classes.append(self._top_classes(cls, n, width))
        out_labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        if output == OutputAccess.LABEL:
            return out_labels, None, None
        out_probs = np.concatenate(probs) if probs else np.zeros((0, width))
        if output == OutputAccess.TOP_K:
            out_classes = np.concatenate(classes) if classes else np.zeros((0, width), np.int64)
            return out_labels, out_probs, out_classes
        return out_labels, out_probs, None

    # -- answers, checked as precomputed outputs are ---------------------------------------

    def _labels(self, value: Any, n: int) -> np.ndarray:
        """``n`` class indices in [0, num_classes): ints only (1.5, true or "3" are no label)."""
        if not isinstance(value, list) or len(value) != n:
            got = f"{len(value)} labels" if isinstance(value, list) else f"labels {_shown(value)}"
            raise TargetAnswerError(f"the server at {self.url} answered {got} for {n} records")
        return self._class_indices(value, "labels")

    def _class_indices(self, values: list[Any], what: str) -> np.ndarray:
        if not all(type(v) is int for v in values):
            bad = next(v for v in values if type(v) is not int)
            raise TargetAnswerError(f"the server at {self.url} answered {what} that are not class indices ({_shown(bad)})")
        out = np.asarray(values, dtype=object)
        if len(out) and (min(values) < 0 or max(values) >= self.num_classes):
            raise TargetAnswerError(
                f"the server at {self.url} answered {what} {min(values)}..{max(values)}, outside its {self.num_classes} classes "
                f"(0..{self.num_classes - 1})"
            )
        return out.astype(np.int64)

    def _probabilities(self, value: Any, n: int, width: int, *, full: bool) -> np.ndarray:
        """``(n, width)`` probabilities: finite, in [0, 1]; full rows sum to 1 (where the server
        says they do), top-k rows descend and sum to at most 1."""
        source = f"the server at {self.url}"
        try:
            p = _check_outputs(np.asarray(value), n, width, source)
        except (InputError, ValueError) as exc:  # ValueError: ragged rows
            message = str(exc) if isinstance(exc, InputError) else f"{source} returned rows of different lengths"
            raise TargetAnswerError(f"{message} (probabilities)") from None
        tol = PROBABILITY_TOLERANCE
        if (p < 0).any() or (p > 1 + tol).any():
            bad = int(np.flatnonzero(((p < 0) | (p > 1 + tol)).any(axis=1))[0])
            raise TargetAnswerError(f"{source} answered probabilities outside [0, 1] (row {bad}: {_shown(p[bad].tolist())})")
        sums = p.sum(axis=1)
        if full and self.rows_sum_to_one:
            off = np.flatnonzero(np.abs(sums - 1.0) > tol)
        elif not full:
            if p.shape[1] > 1 and (np.diff(p, axis=1) > 0).any():
                raise TargetAnswerError(f"{source} answered top-k probabilities that do not descend")
            off = np.flatnonzero(sums > 1 + tol) if self.rows_sum_to_one else np.zeros(0, np.int64)
        else:
            off = np.zeros(0, np.int64)
        if len(off):
            raise TargetAnswerError(f"{source} answered probability rows that do not sum to 1 (row {int(off[0])} sums to {sums[off[0]]:.6g})")
        return p

    def _top_classes(self, value: Any, n: int, width: int) -> np.ndarray:
        """``(n, width)`` distinct class indices per row (the classes of the top-k probabilities)."""
        if not isinstance(value, list) or len(value) != n or not all(isinstance(r, list) and len(r) == width for r in value):
            raise TargetAnswerError(f"the server at {self.url} answered top-k classes not shaped ({n}, {width})")
        out = self._class_indices([c for row in value for c in row], "top-k classes").reshape(n, width)
        if width > 1 and (np.diff(np.sort(out, axis=1), axis=1) == 0).any():
            raise TargetAnswerError(f"the server at {self.url} answered a class twice in one top-k row")
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Full probability vectors (only from a server with the ``full`` policy)."""
        return self.query(x, OutputAccess.PROBABILITIES, None)[1]  # type: ignore[return-value]


def request_json(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    api_key: str | None = None,
    timeout: float = 30,
    server: str = "miaudit serve",
) -> dict[str, Any]:
    """One request to a miaudit server at ``url`` (``X-API-Key`` when ``api_key``); its answer,
    a JSON object read as bounded JSON (at most ``--limit response_bytes``, all within
    ``timeout`` seconds). Refusals and failures are one :class:`TargetHttpError` line (401: a key
    is needed, 403: :class:`AccessDeniedError`); ``server`` names the command that serves there."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body, allow_nan=False).encode()
        headers["Content-Type"] = "application/json"
    if api_key:
        headers["X-API-Key"] = api_key
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = _read_answer(resp, f"{url}{path}'s answer", timeout)
    except urllib.error.HTTPError as exc:
        message = _error_message(exc)
        if exc.code == 401:
            raise TargetHttpError(f"{url} needs a valid API key ({message}); pass api_key= (--api-key)") from None
        if exc.code == 403:
            raise AccessDeniedError(f"{url} refused: {message}") from None
        raise TargetHttpError(f"{url}{path} answered {exc.code}: {message}") from None
    except TimeoutError:
        raise TargetHttpError(f"{url}{path} did not answer within {timeout:g} s; check the server") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TargetHttpError(f"cannot reach {url} ({reason}); is `{server}` running there?") from None
    # response_bytes, not json_bytes, bounds an answer's size; the depth bound still applies
    with use_limits(json_bytes=max(limits().json_bytes, limits().response_bytes)):
        try:
            out = parse_json(raw, f"{url}{path}'s answer")
        except DataError as exc:
            raise TargetAnswerError(f"{exc}; check the URL") from None
    if not isinstance(out, dict):
        raise TargetHttpError(f"{url}{path} gave an unexpected answer; check the URL")
    return out


def _read_answer(resp: Any, what: str, timeout: float) -> bytes:
    """The body of ``resp``: at most ``response_bytes`` (one more read tells excess), all
    within ``timeout`` seconds (the socket's own timeout is per read: a trickle beats it)."""
    bound = limits().response_bytes
    length = (resp.headers.get("Content-Length") or "").strip()
    if length.isdigit():
        check_at_most("response_bytes", int(length), what)
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while size <= bound:
        chunk = resp.read1(min(1 << 16, bound + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline:
            raise TargetHttpError(f"{what} took over {timeout:g} s to arrive ({size} bytes); check the server")
    raise LimitError(
        f"{what} is over {bound} bytes, above miaudit's limit for one answer; if the server is what you meant, "
        f"raise it with --limit response_bytes={-(-2 * bound // MIB)}m"
    )


def answer_count(value: Any, what: str, *, at_least: int) -> int:
    """``value`` if it is an integer >= ``at_least`` (a JSON number, not a bool, a float or a
    string); else a :class:`TargetAnswerError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        raise TargetAnswerError(f"{what} is {shown(value)}; a miaudit server gives an integer >= {at_least}")
    return value


def shown(value: Any) -> str:
    """``repr(value)``, cut to 60 characters, for a one-line error about an answer."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_count, _shown = answer_count, shown


__all__ = ["HttpTarget", "TargetAnswerError", "TargetHttpError", "answer_count", "request_json", "shown"]
