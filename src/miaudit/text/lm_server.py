"""An HTTP API in front of a causal language model, releasing per-token log-probabilities.

The threat model of a black-box scoring API, as OpenAI-style ``logprobs`` endpoints offer: for
each token of a document the log-probability of the actual token given the ones before it, and
(what min-k%++, Zhang et al. 2024, normalises by) the mean and variance of log p over the
model's next-token distribution at that position. ``create_lm_app(model, tokenizer)`` returns a
FastAPI app (it binds nothing; ``miaudit serve-text DIR`` runs it with uvicorn):

- ``GET /v1/info``: ``kind`` (``"causal-lm"``), ``vocab_size`` (the tokenizer's entries; every
  id is below it), ``distribution_size`` (the entries of the model's next-token distribution,
  which may be padded beyond the tokenizer's), ``context_length`` (tokens), the request bounds,
  ``auth_required``.
- ``POST /v1/logprobs`` with ``{"documents": [text, ...]}`` and optionally ``"prefix": text``:
  per document ``{"token_ids": [...n ids], "n_tokens": n, "logprob": [...], "mean": [...],
  "var": [...]}`` (n - 1 entries each: the predicted tokens 2..n), the statistics of
  :func:`miaudit.text.lm.token_statistics`; with a prefix those of
  :func:`~miaudit.text.lm.conditional_token_statistics` (ReCaLL) and ``"prefix_tokens"``, how
  many of the prefix's tokens were placed before the document.
- ``POST /v1/tokenize`` with ``{"documents": [...]}``: ``{"token_ids": [[...], ...]}``, each
  document's ids in full (no special tokens, no truncation): DC-PDD counts token frequencies
  over the attacker's own text with the target's tokenizer.

The same hardening as the classifier server (:mod:`miaudit.targets.server`, whose helpers this
uses): API keys (``X-API-Key`` or ``Authorization: Bearer``) 401, a body over its bound, more
than ``max_documents`` documents, a document (or the prefix) over ``max_document_chars`` or a
request over ``max_request_chars`` characters 413, a body slower than ``read_timeout`` 408,
malformed JSON or a document that is not a string (or has fewer than 2 tokens) 422. One model
call at a time; documents counted per key in ``app.state.queries``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from miaudit.errors import ConfigError, InputError
from miaudit.targets.server import (
    API_VERSION,
    BadRequest,
    ClientGone,
    authenticate_request,
    check_api_keys,
    error_response,
    logger,
    read_json_request,
    unauthorized,
)
from miaudit.text.lm_endpoint import DEFAULT_MAX_DOCUMENT_CHARS, DEFAULT_MAX_DOCUMENTS, DEFAULT_MAX_REQUEST_CHARS, KIND

# JSON may write one character as up to 12 bytes (a \\uXXXX surrogate pair); room for the rest.
_BYTES_PER_CHAR = 12
_OVERHEAD_BYTES = 64 << 10


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
    return value


def parse_documents(payload: Any, *, max_documents: int, max_document_chars: int, max_request_chars: int, prefix: bool) -> tuple[list[str], str | None]:
    """The request's documents (and prefix, where ``prefix`` allows one); :class:`BadRequest` 422
    or 413 otherwise."""
    if not isinstance(payload, dict) or "documents" not in payload:
        raise BadRequest(422, 'the body must be a JSON object {"documents": ["text", ...]}')
    docs = payload["documents"]
    extra = sorted(set(payload) - {"documents", *(("prefix",) if prefix else ())})
    if extra:
        raise BadRequest(422, f"unknown field(s) {', '.join(map(repr, extra[:3]))}; send documents" + (" and prefix" if prefix else ""))
    if not isinstance(docs, list) or not docs:
        raise BadRequest(422, '"documents" must be a non-empty list of strings')
    if len(docs) > max_documents:
        raise BadRequest(413, f"{len(docs)} documents in one request; send at most {max_documents}")
    bad = next((i for i, d in enumerate(docs) if not isinstance(d, str)), None)
    if bad is not None:
        raise BadRequest(422, f"document {bad} is not a string")
    text = payload.get("prefix") if prefix else None
    if text is not None and not isinstance(text, str):
        raise BadRequest(422, '"prefix" must be a string')
    for i, d in enumerate([*docs, *([text] if text else [])]):
        if len(d) > max_document_chars:
            what = "the prefix" if i == len(docs) else f"document {i}"
            raise BadRequest(413, f"{what} has {len(d)} characters; send at most {max_document_chars} per document")
    total = sum(map(len, docs)) + len(text or "")
    if total > max_request_chars:
        raise BadRequest(413, f"{total} characters in one request; send at most {max_request_chars} (split the batch)")
    return docs, text


def create_lm_app(
    model: Any,
    tokenizer: Any,
    *,
    max_documents: int = DEFAULT_MAX_DOCUMENTS,
    max_document_chars: int = DEFAULT_MAX_DOCUMENT_CHARS,
    max_request_chars: int = DEFAULT_MAX_REQUEST_CHARS,
    api_keys: Iterable[str] | None = None,
    read_timeout: float | None = 30.0,
    batch_size: int = 16,
) -> FastAPI:
    """A FastAPI app serving ``model`` and ``tokenizer`` (from :func:`miaudit.text.lm_folder.load_lm`)
    as described above. ``api_keys``: when given (even empty), every request needs one of them.
    ``batch_size``: documents per forward pass."""
    from miaudit.text.lm import _context, conditional_token_statistics, prefix_tokens_used, token_statistics

    max_documents = _positive(max_documents, "max_documents")
    max_document_chars = _positive(max_document_chars, "max_document_chars")
    max_request_chars = _positive(max_request_chars, "max_request_chars")
    batch_size = _positive(batch_size, "batch_size")
    if read_timeout is not None and not 0 < float(read_timeout) < math.inf:
        raise ConfigError(f"read_timeout must be a positive number of seconds, got {read_timeout!r}")
    keys = check_api_keys(api_keys)
    body_limit = max_request_chars * _BYTES_PER_CHAR + _OVERHEAD_BYTES
    context = _context(model)
    vocab_size = len(tokenizer)
    distribution_size = int(getattr(model.config, "vocab_size", None) or vocab_size)
    lock = threading.Lock()
    bounds = {"max_documents": max_documents, "max_document_chars": max_document_chars, "max_request_chars": max_request_chars}

    app = FastAPI(title="miaudit language-model API", version=API_VERSION,
                  description="Per-token log-probabilities of a causal language model (and the mean and variance of log p).")  # fmt: skip
    app.state.queries = {}

    def logprobs(docs: list[str], prefix: str | None) -> dict[str, Any]:
        with lock:
            if prefix is None:
                stats, used = token_statistics(model, tokenizer, docs, batch_size=batch_size), None
            else:
                stats = conditional_token_statistics(model, tokenizer, docs, prefix, batch_size=batch_size)
                used = prefix_tokens_used(model, tokenizer, docs, prefix)
            first = tokenizer(docs, add_special_tokens=False, truncation=True, max_length=context)["input_ids"]
        out = []
        for i, s in enumerate(stats):
            row = {"token_ids": [int(first[i][0]), *s.token_ids.tolist()], "n_tokens": s.n_tokens,
                   "logprob": s.logprob.tolist(), "mean": s.mean.tolist(), "var": s.var.tolist()}  # fmt: skip
            if used is not None:
                row["prefix_tokens"] = int(used[i])
            out.append(row)
        return {"documents": out}

    def tokenize(docs: list[str]) -> dict[str, Any]:
        with lock:
            ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
        return {"token_ids": [list(map(int, x)) for x in ids]}

    async def handle(request: Request, *, prefix: bool, work: Any) -> JSONResponse:
        who = authenticate_request(request, keys)
        if who is None:
            return unauthorized()
        try:
            try:
                payload = await read_json_request(request, body_limit, read_timeout, who)
            except ClientGone:
                return error_response(400, "disconnected")  # uvicorn sends nothing to a gone client
            docs, text = parse_documents(payload, prefix=prefix, **bounds)
            try:
                body = await run_in_threadpool(work, docs, text) if prefix else await run_in_threadpool(work, docs)
            except InputError as exc:  # e.g. a document of fewer than 2 tokens
                raise BadRequest(422, str(exc)) from None
        except BadRequest as exc:
            logger.info("rejected request from %s: %s %s", who, exc.status, exc.message)
            return error_response(exc.status, exc.message)
        total = app.state.queries.get(who, 0) + len(docs)
        app.state.queries[who] = total
        logger.info("%s sent %d document(s) to %s, %d in total", who, len(docs), request.url.path, total)
        return JSONResponse(body)

    @app.get("/v1/info", summary="The model's vocabulary, context and the request bounds")
    async def info(request: Request) -> JSONResponse:
        if authenticate_request(request, keys) is None:
            return unauthorized()
        return JSONResponse({"api_version": API_VERSION, "kind": KIND, "model_type": getattr(model.config, "model_type", None),
                             "vocab_size": vocab_size, "distribution_size": distribution_size, "context_length": context, **bounds, "max_body_bytes": body_limit,
                             "auth_required": keys is not None})  # fmt: skip

    @app.post("/v1/logprobs", summary="Per-token log-probabilities of a batch of documents")
    async def logprobs_endpoint(request: Request) -> JSONResponse:
        return await handle(request, prefix=True, work=logprobs)

    @app.post("/v1/tokenize", summary="Token ids of a batch of texts")
    async def tokenize_endpoint(request: Request) -> JSONResponse:
        return await handle(request, prefix=False, work=tokenize)

    return app


__all__ = ["DEFAULT_MAX_DOCUMENTS", "DEFAULT_MAX_DOCUMENT_CHARS", "DEFAULT_MAX_REQUEST_CHARS", "KIND", "create_lm_app", "parse_documents"]
