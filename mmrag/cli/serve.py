"""`mmrag serve`: a web page and JSON API over an index (Starlette + uvicorn)."""

from __future__ import annotations

from pathlib import Path

from mmrag.cli.common import guarded, stderr_console
from mmrag.cli.options import (
    GeneratorOpt,
    HostOpt,
    IndexOpt,
    MaxNewTokensOpt,
    PortOpt,
    PreloadOpt,
    QdrantUrlOpt,
    QuantOpt,
    StopRepeatOpt,
    TopKOpt,
)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
) -> None:
    """Serve a page to ask questions about an index, with the answer streaming and its sources shown.

    Open http://HOST:PORT/ in a browser. JSON endpoints: /api/search, /api/ask, /api/ask/stream
    (Server-Sent Events), /api/info. One process holds the index; requests take turns on the models.
    """
    from mmrag.index.folder import read_manifest
    from mmrag.types import MMRAGError

    if read_manifest(index.expanduser().resolve()) is None:
        raise MMRAGError(f"{index}: no index here (no manifest.json); build one with mmrag index")
    try:
        import uvicorn

        from mmrag.serve.app import create_app
        from mmrag.serve.backend import Backend
    except ImportError as e:
        raise MMRAGError(f"mmrag serve needs starlette and uvicorn ({e}): pip install 'mmrag[serve]'") from e
    overrides = {
        "generate.model": generator,
        "generate.quantize": quant,
        "generate.max_new_tokens": max_new_tokens,
        "generate.stop_on_repetition": stop_on_repetition,
        "store.url": qdrant_url,
    }
    con = stderr_console()
    if host not in _LOOPBACK:
        con.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach it can read the index")
    con.print(f"mmrag serve: opening {index} and loading models…", highlight=False)
    backend = Backend.for_index(index, k=k, **overrides)
    try:
        # Opened here, not in the app's startup, so that a locked index or a missing model is a
        # one-line error rather than a server traceback.
        backend.start(preload)
        con.print(f"mmrag serve: http://{host}:{port}/ (Ctrl-C to stop)", highlight=False)
        uvicorn.run(create_app(backend), host=host, port=port, log_level="warning")
    finally:
        backend.close()
