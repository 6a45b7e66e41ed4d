"""`mmrag serve`: a web page and JSON API over an index (Starlette + uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.common import IndexOpt, QdrantUrlOpt, guarded, stderr_console

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@guarded
def serve(
    index: IndexOpt = Path("./mmrag-index"),
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface).", envvar="MMRAG_HOST")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", envvar="MMRAG_PORT")] = 8000,
    k: Annotated[int, typer.Option("-k", "--top-k", help="Default hits per answer.")] = 5,
    generator: Annotated[
        str | None,
        typer.Option(
            "--generator",
            "-g",
            help="VLM/LLM hub id or folder, `smollm2-135m`, or a bridge folder.",
            envvar="MMRAG_GENERATOR",
            rich_help_panel="Model",
        ),
    ] = None,
    no_quant: Annotated[
        bool, typer.Option("--no-quant", help="Load the LLM unquantised.", rich_help_panel="Model")
    ] = False,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Upper bound on generated tokens.", rich_help_panel="Model")
    ] = None,
    preload: Annotated[
        bool,
        typer.Option(
            "--preload/--no-preload",
            help="Load the generator and encoders before accepting requests.",
            rich_help_panel="Model",
        ),
    ] = True,
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
        "generate.quantize": False if no_quant else None,
        "generate.max_new_tokens": max_new_tokens,
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
