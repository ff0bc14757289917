"""A target model behind a miaudit prediction server (:mod:`miaudit.targets.server`), over HTTP.

``HttpTarget(url)`` reads ``/v1/info`` and is a :class:`~miaudit.targets.access.QueryBackend`:
``TargetAccess(HttpTarget(url), threat, input_shape=...)`` (or ``target.access(threat)``) lets
attacks query the remote model exactly as an in-process one. A threat model asking for more
than the server releases gets :class:`AccessDeniedError`; nothing is ever made up. Batches
larger than the server's ``max_batch`` are split. The client uses only the standard library.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from miaudit.errors import MiauditError
from miaudit.targets.access import AccessDeniedError, QueryAnswer, TargetAccess
from miaudit.threat import OutputAccess, ThreatModel

_LEVELS = {"label": OutputAccess.LABEL, "top-k": OutputAccess.TOP_K, "full": OutputAccess.PROBABILITIES}


class TargetHttpError(MiauditError):
    """The prediction server could not be reached or refused a request."""


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's ``{"error": ...}`` (or FastAPI's ``detail``) message, else the HTTP reason."""
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
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
        try:
            self.num_classes = int(self.info["num_classes"])
            self.input_shape = tuple(int(d) for d in self.info["input_shape"])
            self.output = _LEVELS[self.info["output"]["level"]]
            self.k = None if self.info["output"].get("k") is None else int(self.info["output"]["k"])
            self.max_batch = int(self.info["max_batch"])
        except (KeyError, TypeError, ValueError):
            raise TargetHttpError(f"{self.url}/v1/info is not a miaudit prediction server's answer; check the URL") from None
        self.requests = 0

    def __repr__(self) -> str:
        k = f" k={self.k}" if self.k else ""
        return f"HttpTarget({self.url!r}, output={self.output.name.lower()}{k})"

    def access(self, threat: ThreatModel) -> TargetAccess:
        """A :class:`TargetAccess` on this target under ``threat``."""
        return TargetAccess(self, threat, input_shape=self.input_shape)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            message = _error_message(exc)
            if exc.code == 401:
                raise TargetHttpError(f"{self.url} needs a valid API key ({message}); pass api_key=") from None
            if exc.code == 403:
                raise AccessDeniedError(f"{self.url} refused: {message}") from None
            raise TargetHttpError(f"{self.url}{path} answered {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TargetHttpError(f"cannot reach {self.url} ({reason}); is `miaudit serve` running there?") from None
        try:
            out = json.loads(raw)
        except ValueError:
            raise TargetHttpError(f"{self.url}{path} did not answer JSON; check the URL") from None
        if not isinstance(out, dict):
            raise TargetHttpError(f"{self.url}{path} gave an unexpected answer; check the URL")
        return out

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
        labels, probs, classes = [], [], []
        for start in range(0, len(x), self.max_batch):
            batch = x[start : start + self.max_batch]
            flat = batch.reshape(len(batch), -1).astype(np.float64)  # float32 -> float64 -> JSON is exact
            answer = self._request("POST", "/v1/predict", {"inputs": flat.tolist(), "output": ask})
            self.requests += 1
            try:
                labels.append(np.asarray(answer["labels"], dtype=np.int64))
                if output == OutputAccess.TOP_K:
                    probs.append(np.asarray(answer["top_k"]["probabilities"], dtype=np.float64))
                    classes.append(np.asarray(answer["top_k"]["classes"], dtype=np.int64))
                elif output >= OutputAccess.PROBABILITIES:
                    probs.append(np.asarray(answer["probabilities"], dtype=np.float64))
            except (KeyError, TypeError, ValueError):
                raise TargetHttpError(f"{self.url} answered without the {ask} output it promised") from None
        n_cls = self.num_classes
        out_labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        if output == OutputAccess.LABEL:
            return out_labels, None, None
        width = k if output == OutputAccess.TOP_K else n_cls
        out_probs = np.concatenate(probs) if probs else np.zeros((0, width))
        if out_probs.shape != (len(x), width) or len(out_labels) != len(x):
            raise TargetHttpError(f"{self.url} answered {out_probs.shape} probabilities for {len(x)} records")
        if output == OutputAccess.TOP_K:
            out_classes = np.concatenate(classes) if classes else np.zeros((0, width), np.int64)
            return out_labels, out_probs, out_classes
        return out_labels, out_probs, None

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Full probability vectors (only from a server with the ``full`` policy)."""
        return self.query(x, OutputAccess.PROBABILITIES, None)[1]  # type: ignore[return-value]


__all__ = ["HttpTarget", "TargetHttpError"]
