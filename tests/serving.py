"""A real server for tests that need sockets: uvicorn on a free loopback port, in a thread.

Starlette's TestClient runs the app to completion before it returns a response, so a client that
goes away mid-answer (or a browser) needs a real server.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """uvicorn on a free port in a thread; yields the base URL once the app has started."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300  # startup loads the models
    while not server.started:
        assert thread.is_alive(), "the server stopped during startup"
        assert time.monotonic() < deadline, "the server did not start in 300 s"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
