"""``miaudit serve MODEL``: put a model behind the HTTP prediction API (uvicorn).

MODEL is a model folder (``save_target`` / ``audit --save-target``: torch or scikit-learn) or a
model file trained elsewhere: a scikit-learn estimator saved with skops (``.skops``) or an ONNX
model (``.onnx``).

The port is bound before the model loads, so a port in use is one line and exit 2 at once.
``--timeout`` and ``--max-connections`` bound what slow or many clients can hold
(:mod:`miaudit.targets.server_runtime`)."""

from __future__ import annotations

import argparse

from miaudit.cli.common import COMMANDS, Command
from miaudit.errors import ConfigError
from miaudit.targets.server_runtime import DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL",
        help="a model folder (model.json + model.safetensors or model.skops) or a model file: .skops (scikit-learn) or .onnx",
    )
    p.add_argument("--input-shape", default=None, metavar="SHAPE", help="model files only: one record's shape, e.g. 64 or 1,28,28 (needed when the file does not fix it)")
    p.add_argument("--outputs", default="logits", choices=["logits", "probabilities"], help="what an ONNX model's first output is")
    p.add_argument("--trusted-type", action="append", default=[], metavar="TYPE", help="skops only: also load this type (as named in the refusal); repeat for several")
    p.add_argument("--output", required=True, help="what answers release: label, topK (e.g. top3) or full")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    p.add_argument("--api-key", action="append", default=None, metavar="KEY", help="require this API key (repeat for several)")
    p.add_argument("--max-batch", type=int, default=1024, help="most records per request (default 1024)")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds a client has to send a request's headers, again its body, and to read the answer; "
        f"slower ones get 408 or are closed (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help=f"most connections open at once; one more gets 503 and is closed (default {DEFAULT_MAX_CONNECTIONS})",
    )
    p.add_argument(
        "--defense",
        default=None,
        help="output-time defense applied to every answer, e.g. memguard:budget=1.0, top-k:k=3, rounding:decimals=2, "
        "label-only, gaussian-noise:sigma=0.05",
    )
    p.add_argument(
        "--defense-data",
        default=None,
        metavar="NPZ",
        help="memguard only: .npz with 'members' (training records) and 'nonmembers' (records never trained on)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="server log level")


def _run(args: argparse.Namespace) -> int:
    from miaudit.targets.saving import load_target, parse_input_shape
    from miaudit.targets.server import create_app
    from miaudit.targets.server_runtime import bind_socket, check_bounds, serve_announced

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_batch < 1:
        raise ConfigError(f"--max-batch must be >= 1, got {args.max_batch}")
    check_bounds(args.timeout, args.max_connections)
    if args.defense is not None:
        from miaudit.defenses import parse_defense

        parse_defense(args.defense)  # a bad spec fails before the model is loaded
    shape = parse_input_shape(args.input_shape) if args.input_shape is not None else None
    sock = bind_socket(args.host, args.port)  # before the model loads: a port in use fails at once
    try:
        served = load_target(args.model, input_shape=shape, outputs=args.outputs, trusted_types=args.trusted_type)
        classifier = served.classifier
        if args.defense is not None:
            from miaudit.defenses.serving import defend_served_model

            classifier = defend_served_model(classifier, args.defense, args.defense_data)
        elif args.defense_data is not None:
            raise ConfigError("--defense-data goes with --defense memguard")
        app = create_app(
            classifier,
            output=args.output,
            max_batch=args.max_batch,
            api_keys=args.api_key,
            input_shape=served.input_shape,
            class_names=served.class_names,
            read_timeout=args.timeout,
            rows_sum_to_one=args.defense is None,  # rounding and top-k defenses do not keep sums
        )
        serve_announced(app, sock, detail=f"output {args.output}", timeout=args.timeout, max_connections=args.max_connections,
                        log_level=args.log_level)  # fmt: skip
    finally:
        sock.close()
    return 0


COMMANDS.add("serve", Command("serve a saved model over HTTP with a chosen output policy", _configure, _run))
