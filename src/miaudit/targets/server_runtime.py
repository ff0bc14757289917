"""Running the prediction API (:mod:`miaudit.targets.server`) under uvicorn, with bounds on what
one client can hold: time, connections, header bytes.

uvicorn's h11 protocol has no timeout until a first response is sent: a client that connects
and sends nothing, or trickles its headers, holds a connection forever, and a few hundred of
them hold the server. :func:`run_server` therefore serves with :class:`~uvicorn.protocols.http.
h11_impl.H11Protocol` extended so that

- a connection must deliver a complete request's headers within ``timeout`` seconds of opening
  (and of its previous response), or it is closed; the body has its own ``timeout`` in the app
  (408, see :func:`miaudit.targets.server.create_app`);
- a response the client does not read for ``timeout`` seconds is dropped;
- beyond ``max_connections`` open connections, a new one is answered 503 at once; its request
  is read and discarded for up to :data:`REFUSAL_LINGER_S` before the close (a close with the
  request unread makes the kernel reset the connection, and the client then never sees the 503);
- a request's headers are at most :data:`HEADER_BYTES`.

:func:`bind_socket` binds before anything else is loaded, so a port in use is one line, not
uvicorn's log and exit 1. (The extension uses uvicorn's H11Protocol internals: ``cycle``,
``connections``, ``on_response_complete``; tests/test_server_hardening.py checks them.)
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
from typing import Any

from miaudit.errors import ConfigError

logger = logging.getLogger("miaudit.server")

HEADER_BYTES = 16 << 10
"""Most bytes of one request's line and headers (h11's own default, set here on purpose)."""

REFUSAL_LINGER_S = 1.0
"""Longest a refused connection stays open to drain its request (it no longer counts toward the cap)."""

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 128


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening); a one-line ConfigError if it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({exc.strerror}); use e.g. 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restarted server may rebind at once while old connections linger.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use; choose another with --port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"port {port} on {host} needs privileges to bind; choose one above 1023 with --port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--host {host} is not an address of this machine; use e.g. 127.0.0.1") from None
        raise ConfigError(f"cannot bind {host}:{port} ({exc.strerror or exc}); choose another --host or --port") from None
    return sock


def _busy_response(max_connections: int) -> bytes:
    body = json.dumps({"error": f"the server is at its limit of {max_connections} connections; retry shortly"}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"retry-after: 1\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def protocol_class(timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with the deadlines and the connection cap described above."""
    from uvicorn.protocols.http.h11_impl import H11Protocol  # imported here: the CLI starts without uvicorn

    busy = _busy_response(max_connections)

    class BoundedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _write_deadline: asyncio.TimerHandle | None = None
        _partial = False  # bytes received since the deadline was armed
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                logger.warning("refused a connection from %s: %d connections open (--max-connections)", _peer(self.client), max_connections)
                self._refuse(transport)
                return
            self._arm()

        def _refuse(self, transport: asyncio.Transport) -> None:
            """Answer 503, half-close, and drain what the client still sends until it closes or the linger ends."""
            self._refused = True
            self.connections.discard(self)
            transport.write(busy)
            if transport.can_write_eof():
                transport.write_eof()
            self._deadline = self.loop.call_later(min(timeout, REFUSAL_LINGER_S), transport.close)

        def eof_received(self) -> None:
            if self._refused:
                self.transport.close()
                return
            super().eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._deadline, self._write_deadline):
                if timer is not None:
                    timer.cancel()
            if self._refused:
                self.transport.close()
                return
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # drained, never parsed
            self._partial = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request's headers get a fresh deadline

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._partial = False
            self._deadline = self.loop.call_later(timeout, self._expire)

        def _expire(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                return  # the app has the request: it bounds the body itself, and computing is not the client's doing
            if self._partial or self.cycle is None:  # silent for an idle keep-alive connection
                logger.info("closed a connection from %s: no complete request within %g s (--timeout)", _peer(self.client), timeout)
            self.transport.close()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._write_deadline is None:
                self._write_deadline = self.loop.call_later(timeout, self._drop_unread)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._write_deadline is not None:
                self._write_deadline.cancel()
                self._write_deadline = None

        def _drop_unread(self) -> None:
            self._write_deadline = None
            logger.info("closed a connection from %s: its answer went unread for %g s (--timeout)", _peer(self.client), timeout)
            self.transport.close()

    return BoundedH11Protocol


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


def check_bounds(timeout: float, max_connections: int) -> None:
    """One-line ConfigErrors for a timeout or connection cap that cannot work."""
    if not (isinstance(timeout, (int, float)) and 0 < timeout < float("inf")):
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
        raise ConfigError(f"--max-connections must be a positive integer, got {max_connections!r}")


def make_server(
    app: Any,
    sock: socket.socket,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    log_level: str = "info",
) -> Any:
    """A ``uvicorn.Server`` for ``app`` with the bounds above; start it with ``.run(sockets=[sock])``."""
    import uvicorn

    check_bounds(timeout, max_connections)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(timeout, max_connections),
        log_level=log_level,
        # uvicorn's own cap counts app tasks too (a closed connection whose prediction still runs)
        limit_concurrency=max_connections + 1,
        timeout_keep_alive=min(5, timeout),  # type: ignore[arg-type]  # uvicorn takes any number here
        h11_max_incomplete_event_size=HEADER_BYTES,
    )
    return uvicorn.Server(config)


def run_server(app: Any, sock: socket.socket, **bounds: Any) -> None:
    """Serve ``app`` on the bound ``sock`` (see :func:`bind_socket`) until interrupted;
    ``bounds`` are :func:`make_server`'s keywords."""
    try:
        make_server(app, sock, **bounds).run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits on a startup failure, after logging why
        if exc.code not in (0, None):
            raise ConfigError("the server could not start (uvicorn's reason is logged above)") from None


def serve_announced(app: Any, sock: socket.socket, *, detail: str, timeout: float, max_connections: int, log_level: str) -> None:
    """The commands' way to serve: logging at ``log_level``, one line ``serving on URL (detail,
    --timeout, --max-connections)`` on stderr, then :func:`run_server` until interrupted."""
    import sys

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving on http://{shown}:{port} ({detail}, --timeout {timeout:g} s, --max-connections {max_connections})", file=sys.stderr, flush=True)
    run_server(app, sock, timeout=timeout, max_connections=max_connections, log_level=log_level)


__all__ = ["DEFAULT_MAX_CONNECTIONS", "DEFAULT_TIMEOUT", "HEADER_BYTES", "REFUSAL_LINGER_S", "bind_socket", "check_bounds", "make_server", "protocol_class", "run_server", "serve_announced"]
