"""``miaudit serve-text DIR``: put a Hugging Face causal-LM folder behind the log-probability API.

DIR is loaded as ``audit-text --model-dir`` loads it (:func:`miaudit.text.lm_folder.load_lm`:
safetensors only, no custom code). The API is :mod:`miaudit.text.lm_server`; the transport
bounds (``--timeout``, ``--max-connections``) are ``serve``'s (:mod:`miaudit.targets.server_runtime`).
The port is bound before the model loads, so a port in use is one line and exit 2 at once.
"""

from __future__ import annotations

import argparse

from miaudit.cli.common import COMMANDS, Command
from miaudit.errors import ConfigError
from miaudit.targets.server_runtime import DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT
from miaudit.text.lm_endpoint import DEFAULT_MAX_DOCUMENT_CHARS, DEFAULT_MAX_DOCUMENTS, DEFAULT_MAX_REQUEST_CHARS


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="DIR", help="a Hugging Face causal-LM folder (safetensors weights, no remote code)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    p.add_argument("--api-key", action="append", default=None, metavar="KEY", help="require this API key (repeat for several)")
    p.add_argument("--max-documents", type=int, default=DEFAULT_MAX_DOCUMENTS, help=f"most documents per request (default {DEFAULT_MAX_DOCUMENTS})")
    p.add_argument("--max-document-chars", type=int, default=DEFAULT_MAX_DOCUMENT_CHARS,
                   help=f"most characters of one document or prefix (default {DEFAULT_MAX_DOCUMENT_CHARS})")  # fmt: skip
    p.add_argument("--max-request-chars", type=int, default=DEFAULT_MAX_REQUEST_CHARS,
                   help=f"most characters of one request, all documents together (default {DEFAULT_MAX_REQUEST_CHARS})")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16, help="documents per forward pass (default 16)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"seconds a client has to send a request's headers, again its body, and to read the answer (default {DEFAULT_TIMEOUT:g})")  # fmt: skip
    p.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                   help=f"most connections open at once; one more gets 503 and is closed (default {DEFAULT_MAX_CONNECTIONS})")  # fmt: skip
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="server log level")


def _run(args: argparse.Namespace) -> int:
    from miaudit.targets.server_runtime import bind_socket, check_bounds, serve_announced

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    for flag in ("max_documents", "max_document_chars", "max_request_chars", "batch_size"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    check_bounds(args.timeout, args.max_connections)
    sock = bind_socket(args.host, args.port)  # before the model loads: a port in use fails at once
    try:
        from transformers.utils import logging as hf_logging

        from miaudit.text.lm_folder import load_lm
        from miaudit.text.lm_server import create_lm_app

        hf_logging.set_verbosity_error()
        model, tokenizer = load_lm(args.model_dir)
        app = create_lm_app(model, tokenizer, max_documents=args.max_documents, max_document_chars=args.max_document_chars,
                            max_request_chars=args.max_request_chars, api_keys=args.api_key, read_timeout=args.timeout,
                            batch_size=args.batch_size)  # fmt: skip
        serve_announced(app, sock, detail=f"token log-probabilities of {args.model_dir}", timeout=args.timeout,
                        max_connections=args.max_connections, log_level=args.log_level)  # fmt: skip
    finally:
        sock.close()
    return 0


COMMANDS.add("serve-text", Command("serve a causal-LM folder over HTTP: per-token log-probabilities for audit-text --endpoint", _configure, _run))
