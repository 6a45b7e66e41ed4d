"""`mmrag serve`: a web page and JSON API over an index (Starlette + uvicorn)."""

from __future__ import annotations

from pathlib import Path

from mmrag.cli.common import guarded, stderr_console
from mmrag.cli.options import (
    AllowHostOpt,
    GeneratorOpt,
    HostOpt,
    IndexOpt,
    MaxNewTokensOpt,
    NoTokenOpt,
    PortOpt,
    PreloadOpt,
    QdrantUrlOpt,
    QuantOpt,
    StopRepeatOpt,
    TokenOpt,
    TopKOpt,
)


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
) -> None:
    """Serve a page to ask questions about an index, with the answer streaming and its sources shown.

    Open the printed URL (it carries the token) in a browser. JSON endpoints, each needing
    `Authorization: Bearer TOKEN`: /api/search, /api/ask, /api/ask/stream (Server-Sent Events),
    /api/info. One process holds the index; requests take turns on the models. See docs/security.md.
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
    try:
        # Opened here, not in the app's startup, so that a locked index or a missing model is a
        # one-line error rather than a server traceback.
        backend.start(preload)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        url = f"http://{shown}:{port}/" + (f"?token={sec.token}" if sec.token else "")
        con.print(f"mmrag serve: {url} (Ctrl-C to stop)", highlight=False, soft_wrap=True)
        uvicorn.run(create_app(backend, security=sec), host=host, port=port, log_level="warning")
    finally:
        backend.close()
