"""`mmrag serve`: a web page and JSON API over an index (Starlette + uvicorn)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from mmrag.cli.common import guarded, print_report, stderr_console
from mmrag.cli.options import (
    GeneratorOpt,
    IndexOpt,
    MaxNewTokensOpt,
    PreloadOpt,
    QdrantUrlOpt,
    QuantOpt,
    StopRepeatOpt,
    TopKOpt,
)
from mmrag.cli.options_serve import AllowHostOpt, HostOpt, NoTokenOpt, PortOpt, TokenOpt, WatchOpt


@guarded
def serve(
    index: IndexOpt = Path("./mmrag-index"),
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    k: TopKOpt = 5,
    generator: GeneratorOpt = None,
    quant: QuantOpt = None,
    max_new_tokens: MaxNewTokensOpt = None,
    stop_on_repetition: StopRepeatOpt = None,
    preload: PreloadOpt = True,
    qdrant_url: QdrantUrlOpt = None,
    token: TokenOpt = None,
    no_token: NoTokenOpt = False,
    allow_host: AllowHostOpt = None,
    watch: WatchOpt = False,
) -> None:
    """Serve a page to ask questions about an index, with the answer streaming and its sources shown.

    Open the printed URL (it carries the token) in a browser. JSON endpoints, each needing
    `Authorization: Bearer TOKEN`: /api/search, /api/ask, /api/ask/stream (Server-Sent Events),
    /api/info. One process holds the index; requests take turns on the models. See docs/security.md.

    While it runs, the index folder holds `server.json` (URL, pid, token; readable by you only), and
    mmrag search, ask, info and index on that folder go through this server. --port 0 picks a free port.
    """
    from mmrag.index.folder import read_manifest
    from mmrag.types import MMRAGError

    if read_manifest(index.expanduser().resolve()) is None:
        raise MMRAGError(f"{index}: no index here (no manifest.json); build one with mmrag index")
    try:
        import uvicorn

        from mmrag.serve.app import create_app
        from mmrag.serve.backend import Backend
        from mmrag.serve.presence import announce
    except ImportError as e:
        raise MMRAGError(f"mmrag serve needs starlette and uvicorn ({e}): pip install 'mmrag[serve]'") from e
    overrides = {
        "generate.model": generator,
        "generate.quantize": quant,
        "generate.max_new_tokens": max_new_tokens,
        "generate.stop_on_repetition": stop_on_repetition,
        "store.url": qdrant_url,
    }
    from mmrag.serve.guard import ServeSecurity, is_loopback

    if no_token and token:
        raise MMRAGError("--no-token and --token exclude each other")
    sec = ServeSecurity(host=host, allow_hosts=tuple(allow_host or ()))
    if no_token:
        sec.token = None
    elif token:
        sec.token = token
    sec.check()  # off loopback, never without a token
    con = stderr_console()
    if no_token:
        con.print(
            "[yellow]warning:[/] --no-token: every program and user on this machine can read the index "
            "through this port",
            highlight=False,
        )
    if not is_loopback(host):
        con.print(
            f"[yellow]note:[/] listening on {host}: anyone who has the token can read the index; "
            "clients must reach it by an address or name allowed with --allow-host",
            highlight=False,
        )
    con.print(f"mmrag serve: opening {index} and loading models…", highlight=False)
    backend = Backend.for_index(
        index, k=k, queue=sec.queue, max_question_tokens=sec.max_question_tokens, **overrides
    )
    watcher = None
    try:
        # Opened here, not in the app's startup, so that a locked index or a missing model is a
        # one-line error rather than a server traceback.
        backend.start(preload)
        sock = listening_socket(host, port)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        base = f"http://{shown}:{sock.getsockname()[1]}"
        app = create_app(backend, security=sec)
        if watch:
            watcher = _watcher(app.state.indexer, backend, index, con)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        with announce(index.expanduser().resolve(), base, sec.token):
            url = f"{base}/" + (f"?token={sec.token}" if sec.token else "")
            con.print(f"mmrag serve: {url} (Ctrl-C to stop)", highlight=False, soft_wrap=True)
            server.run(sockets=[sock])
    finally:
        if watcher is not None:
            watcher.stop()
        backend.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (port 0: a free one) and listening, before the app starts: the
    server file names the real port, and a client that reads it early waits in the backlog."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        from mmrag.types import MMRAGError

        raise MMRAGError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    sock.listen(128)
    return sock


def _watcher(indexer: Any, backend: Any, index: Path, con: Any) -> Any:
    """`--watch`: a `Watcher` over the indexed roots that prints each batch as `mmrag index` does."""
    try:
        from mmrag.serve.indexing import Watcher

        folder = index.expanduser().resolve()
        watcher = Watcher(indexer, indexer.roots, folder, lambda report: print_report(con, report))
    except ImportError as e:
        from mmrag.types import MMRAGError

        raise MMRAGError(f"--watch needs watchfiles ({e}): pip install 'mmrag[serve]'") from e
    watcher.start()
    con.print("mmrag serve: watching the indexed folders for changes", highlight=False)
    return watcher
