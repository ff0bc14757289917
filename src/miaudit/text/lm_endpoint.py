"""A language model behind ``miaudit serve-text`` (:mod:`miaudit.text.lm_server`), over HTTP.

Threat model: a black-box API returning token log-probabilities, as OpenAI-style ``logprobs``
endpoints do, plus the mean and variance of log p over the next-token distribution at each
position (what min-k%++, Zhang et al. 2024, normalises by). ``LMEndpoint(url)`` reads
``/v1/info`` and gives the same numbers as :mod:`miaudit.text.lm` gives for a model in this
process (:class:`LocalLM`): :meth:`~LMEndpoint.token_statistics`,
:meth:`~LMEndpoint.conditional_token_statistics` (ReCaLL) and
:meth:`~LMEndpoint.token_frequencies` (DC-PDD, counted here over ids the server's tokenizer
gives). So every text attack that runs on a folder runs on an endpoint.

A server is trusted no more than a file: requests go through
:func:`miaudit.targets.http_target.request_json` (bounded answers, one-line errors) and every
answer is checked before a score is computed from it: one entry per document, token ids whole
numbers below the vocabulary size, a document of ``n_tokens`` = len(token_ids) (2 .. context)
tokens with n_tokens - 1 finite statistics each, log-probabilities <= 0, means within
[-log V, 0] (a negative entropy), variances >= 0, prefix tokens within the room the context
leaves, the same token ids for a document in every answer (V: the distribution's size). Anything else is one
:class:`~miaudit.targets.http_target.TargetAnswerError`. Nothing from the server is executed or
unpickled: it is JSON, read as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from miaudit.errors import ConfigError, InputError
from miaudit.limits import check_at_most
from miaudit.targets.http_target import TargetAnswerError, TargetHttpError, request_json
from miaudit.targets.http_target import answer_count as _count
from miaudit.targets.http_target import shown as _shown
from miaudit.text.stats import TokenStats

KIND = "causal-lm"
"""``/v1/info``'s ``kind`` for a language-model server."""
DEFAULT_MAX_DOCUMENTS = 64
DEFAULT_MAX_DOCUMENT_CHARS = 100_000
DEFAULT_MAX_REQUEST_CHARS = 1_000_000
_SERVER = "miaudit serve-text"
_TOLERANCE = 1e-4  # the server reduces in float32


class LocalLM:
    """A model and tokenizer in this process, with :class:`LMEndpoint`'s methods (the
    functions of :mod:`miaudit.text.lm`), so an audit reads either the same way."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def token_statistics(self, texts: Sequence[str]) -> list[TokenStats]:
        """:func:`miaudit.text.lm.token_statistics` of ``texts``."""
        from miaudit.text.lm import token_statistics

        return token_statistics(self.model, self.tokenizer, texts)

    def conditional_token_statistics(self, texts: Sequence[str], prefix: str) -> tuple[list[TokenStats], list[int]]:
        """ReCaLL's statistics of ``texts`` after ``prefix`` and the prefix tokens each got."""
        from miaudit.text.lm import conditional_token_statistics, prefix_tokens_used

        stats = conditional_token_statistics(self.model, self.tokenizer, texts, prefix)
        return stats, prefix_tokens_used(self.model, self.tokenizer, texts, prefix)

    def token_frequencies(self, texts: Sequence[str]) -> np.ndarray:
        """:func:`miaudit.text.lm.token_frequencies` of ``texts`` in the model's tokenizer."""
        from miaudit.text.lm import token_frequencies

        return token_frequencies(self.tokenizer, texts)


def lm_scorer(target: Any, tokenizer: Any) -> "LMEndpoint | LocalLM":
    """``target`` itself when it is an :class:`LMEndpoint`, else the model and ``tokenizer`` as a :class:`LocalLM`."""
    return target if isinstance(target, LMEndpoint) else LocalLM(target, tokenizer)


def check_endpoint_url(url: str) -> str:
    """``url`` without a trailing slash; a ConfigError unless it is http(s) with a host and
    carries no credentials, query or fragment (a key goes in ``api_key``, never in the URL,
    which audit records show)."""
    text = str(url).strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"--endpoint {url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--endpoint {url!r} must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8000")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ConfigError("--endpoint must not carry credentials, a query or a fragment; give the key with --api-key")
    return text


class LMEndpoint:
    """Client of a ``miaudit serve-text`` server at ``url`` (e.g. ``http://127.0.0.1:8000``)."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 300) -> None:
        self.url = check_endpoint_url(url)
        self.api_key = api_key
        self.timeout = float(timeout)
        self.requests = 0
        info = self._request("GET", "/v1/info")
        where = f"{self.url}/v1/info"
        if info.get("kind") != KIND:
            raise TargetHttpError(f"{where} is not a miaudit serve-text server's answer (kind {_shown(info.get('kind'))}); check the URL")
        self.vocab_size = _count(info.get("vocab_size"), f"{where}: vocab_size", at_least=2)
        check_at_most("features", self.vocab_size, f"{where}: vocabulary size")
        # a next-token distribution may be padded beyond the tokenizer's entries: its entropy is at most log of its size
        self.distribution_size = max(self.vocab_size, _count(info.get("distribution_size"), f"{where}: distribution_size", at_least=2))
        self.context_length = _count(info.get("context_length"), f"{where}: context_length", at_least=2)
        self.max_documents = _count(info.get("max_documents"), f"{where}: max_documents", at_least=1)
        self.max_document_chars = _count(info.get("max_document_chars"), f"{where}: max_document_chars", at_least=1)
        self.max_request_chars = _count(info.get("max_request_chars"), f"{where}: max_request_chars", at_least=1)
        model_type = info.get("model_type")
        self.model_type = model_type if isinstance(model_type, str) else None
        self._ids: dict[str, tuple[int, ...]] = {}  # a document's token ids, as first answered

    def __repr__(self) -> str:
        return f"LMEndpoint({self.url!r}, vocab_size={self.vocab_size}, context_length={self.context_length})"

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        out = request_json(self.url, method, path, body, api_key=self.api_key, timeout=self.timeout, server=_SERVER)
        self.requests += 1
        return out

    # -- the three questions ------------------------------------------------------------------

    def token_statistics(self, texts: Sequence[str]) -> list[TokenStats]:
        """Per document the :class:`TokenStats` the server's model gives (as
        :func:`miaudit.text.lm.token_statistics` gives in process), with their token ids."""
        return [s for s, _ in self._logprobs(texts, None)]

    def conditional_token_statistics(self, texts: Sequence[str], prefix: str) -> tuple[list[TokenStats], list[int]]:
        """ReCaLL's statistics of each document after ``prefix`` (as
        :func:`miaudit.text.lm.conditional_token_statistics`) and the prefix tokens each got."""
        if not isinstance(prefix, str):
            raise InputError("prefix must be a string (the known non-member text placed before each document)")
        pairs = self._logprobs(texts, prefix)
        return [s for s, _ in pairs], [int(k) for _, k in pairs]

    def token_frequencies(self, texts: Sequence[str]) -> np.ndarray:
        """Each vocabulary entry's Laplace-smoothed frequency in ``texts`` as the server's
        tokenizer splits them: ``(count + 1) / (total + V)`` (as :func:`miaudit.text.lm.token_frequencies`)."""
        counts = np.zeros(self.vocab_size, dtype=np.float64)
        for ids in self.token_ids(texts):
            counts += np.bincount(ids, minlength=self.vocab_size)
        return (counts + 1.0) / (counts.sum() + self.vocab_size)

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's token ids as the server's tokenizer splits it, in full (``/v1/tokenize``)."""
        out: list[np.ndarray] = []
        for batch in self._batches(_documents(texts), 0):
            answer = self._request("POST", "/v1/tokenize", {"documents": batch})
            rows = answer.get("token_ids")
            if not isinstance(rows, list) or len(rows) != len(batch):
                raise self._bad(f"token ids for {len(rows) if isinstance(rows, list) else 'no'} of {len(batch)} texts")
            out.extend(self._ids_of(row, f"text {i}'s token ids") for i, row in enumerate(rows))
        return out

    # -- requests and their checks -------------------------------------------------------------

    def _logprobs(self, texts: Sequence[str], prefix: str | None) -> list[tuple[TokenStats, int]]:
        docs = _documents(texts)
        if prefix is not None and len(prefix) > self.max_document_chars:
            raise ConfigError(f"the prefix has {len(prefix)} characters; {self.url} takes at most {self.max_document_chars} per text")
        out: list[tuple[TokenStats, int]] = []
        for batch in self._batches(docs, len(prefix or "")):
            body: dict[str, Any] = {"documents": batch} if prefix is None else {"documents": batch, "prefix": prefix}
            answer = self._request("POST", "/v1/logprobs", body)
            rows = answer.get("documents")
            if not isinstance(rows, list) or len(rows) != len(batch):
                raise self._bad(f"statistics of {len(rows) if isinstance(rows, list) else 'no'} documents for {len(batch)}")
            out.extend(self._row(row, text, prefix is not None) for row, text in zip(rows, batch))
        return out

    def _batches(self, docs: list[str], reserved: int) -> Iterator[list[str]]:
        """Consecutive documents within the server's bounds (``reserved`` characters taken by a prefix)."""
        room = self.max_request_chars - reserved
        batch: list[str] = []
        size = 0
        for i, doc in enumerate(docs):
            if len(doc) > min(self.max_document_chars, room):
                raise ConfigError(f"document {i} has {len(doc)} characters; {self.url} takes at most {min(self.max_document_chars, room)}: shorten it")
            if batch and (len(batch) == self.max_documents or size + len(doc) > room):
                yield batch
                batch, size = [], 0
            batch.append(doc)
            size += len(doc)
        if batch:
            yield batch

    def _row(self, row: Any, text: str, conditional: bool) -> tuple[TokenStats, int]:
        if not isinstance(row, dict):
            raise self._bad(f"a document's statistics as {_shown(row)}, not an object")
        ids = self._ids_of(row.get("token_ids"), "token_ids")
        n = row.get("n_tokens")
        if isinstance(n, bool) or not isinstance(n, int) or n != len(ids) or not 2 <= n <= self.context_length:
            raise self._bad(f"n_tokens {_shown(n)} for {len(ids)} token ids (a document has 2..{self.context_length} tokens)")
        lp, mu, var = (self._numbers(row.get(k), n - 1, k) for k in ("logprob", "mean", "var"))
        if (lp > _TOLERANCE).any():
            raise self._bad("log-probabilities above 0")
        floor = -math.log(self.distribution_size) * (1 + _TOLERANCE) - _TOLERANCE
        if (mu > _TOLERANCE).any() or (mu < floor).any():
            raise self._bad(f"mean log-probabilities outside [-log V, 0] = [{floor:.4g}, 0] (a negative entropy)")
        if (var < -_TOLERANCE).any():
            raise self._bad("negative variances of log p")
        used = 0
        if conditional:
            used = row.get("prefix_tokens")
            if isinstance(used, bool) or not isinstance(used, int) or not 0 <= used <= self.context_length - n:
                raise self._bad(f"prefix_tokens {_shown(used)} for a {n}-token document in a {self.context_length}-token context")
        known = self._ids.setdefault(text, tuple(ids.tolist()))
        if known != tuple(ids.tolist()):
            raise self._bad("different token ids for the same document in two answers")
        return TokenStats(lp, mu, np.maximum(var, 0.0), n, ids[1:].copy()), used

    def _ids_of(self, value: Any, what: str) -> np.ndarray:
        if not isinstance(value, list) or not all(type(v) is int for v in value):
            raise self._bad(f"{what} that are not a list of whole numbers")
        ids = np.asarray(value, dtype=np.int64) if value else np.zeros(0, np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise self._bad(f"{what} {int(ids.min())}..{int(ids.max())}, outside its vocabulary of {self.vocab_size}")
        return ids

    def _numbers(self, value: Any, n: int, what: str) -> np.ndarray:
        if not isinstance(value, list) or len(value) != n:
            got = f"{len(value)} values" if isinstance(value, list) else _shown(value)
            raise self._bad(f"{what} of {got} for {n} predicted tokens")
        if not all(type(v) in (int, float) for v in value):
            raise self._bad(f"{what} that are not all numbers")
        out = np.asarray(value, dtype=np.float64) if value else np.zeros(0)
        if not np.isfinite(out).all():
            raise self._bad(f"{what} that are not all finite")
        return out

    def _bad(self, what: str) -> TargetAnswerError:
        return TargetAnswerError(f"the server at {self.url} answered {what}; it is not a usable log-probability API")


def _documents(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a list of strings, one per document")
    return list(texts)


__all__ = ["DEFAULT_MAX_DOCUMENTS", "DEFAULT_MAX_DOCUMENT_CHARS", "DEFAULT_MAX_REQUEST_CHARS", "KIND", "LMEndpoint", "LocalLM",
           "check_endpoint_url", "lm_scorer"]  # fmt: skip
