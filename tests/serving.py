"""A served app for the HTTP tests: miaudit's bounded uvicorn server on a free loopback port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from miaudit.targets.server_runtime import bind_socket, make_server


@contextmanager
def serving(app: Any, *, timeout: float = 10, max_connections: int = 8) -> Iterator[str]:
    """``app`` served until the block ends; yields its base URL."""
    sock = bind_socket("127.0.0.1", 0)
    server = make_server(app, sock, timeout=timeout, max_connections=max_connections, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
