"""The ASGI app behind `mmrag serve`: a page to ask questions, and the JSON endpoints it calls.

Endpoints:
    GET  /                      the page (plain HTML + JS, no build step, nothing from a CDN)
    GET  /api/info              what the index holds, and the generator
    GET  /api/search?q=&k=&modality=   hits as JSON (`modality` repeatable or comma-separated)
    POST /api/ask               `{"question", "k"?, "modality"?}` -> the answer with its sources
    GET  /api/ask/stream?q=&k=&modality=   Server-Sent Events: `token` events (`{"text"}`),
                                then one `done` event (the answer, as `/api/ask` returns it),
                                or one `error` event (`{"error"}`)
    GET  /api/thumb/{hit_id}    a JPEG of an image, PDF-page or video hit
    GET  /api/media/{file_id}   an indexed video or audio file (HTTP Range requests answered with 206)

Every request but the page's script and styles needs the token (`mmrag.serve.guard`, which also
checks Host and Origin and caps bodies); `app.state.security.token` holds it. A client that goes away
stops its answer; requests beyond the queue get 429 with `Retry-After`.

>>> from mmrag.serve.app import create_app
>>> app = create_app("./idx")   # doctest: +SKIP  (then: uvicorn.run(app))
>>> app.state.security.token     # doctest: +SKIP  (send as `Authorization: Bearer <token>`)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mmrag.serve.backend import Backend, Cancelled, ServerBusy
from mmrag.serve.cli_api import CLI_ROUTES
from mmrag.serve.guard import Guard, ServeSecurity
from mmrag.serve.indexing import ServerIndexer
from mmrag.serve.requests import (
    BadRequest,
    backend_of,
    modalities,
    parse_k,
    query_params,
    question_text,
    stream_answer,
    until_done,
)
from mmrag.types import MMRAGError

try:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise MMRAGError("mmrag serve needs starlette and uvicorn: pip install 'mmrag[serve]'") from e

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("mmrag.serve")
# The page loads only its own script, styles, thumbnails and videos.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
}
_PRIVATE = {"Cache-Control": "private, max-age=3600"}


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


async def info(request: Request) -> Response:
    b = backend_of(request)
    job = b.call(b.info, True) if request.query_params.get("documents") == "1" else b.call(b.info)
    return JSONResponse(await asyncio.wrap_future(job))


async def search(request: Request) -> Response:
    b = backend_of(request)
    q, k, modality = query_params(request)
    hits = await asyncio.wrap_future(b.call(b.search, q, k, modality))
    return JSONResponse({"query": q, "hits": [b.hit_json(h) for h in hits]})


async def ask(request: Request) -> Response:
    b = backend_of(request)
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest('the body must be JSON: {"question": "..."}') from None
    if not isinstance(body, dict) or not isinstance(body.get("question"), str):
        raise BadRequest('missing question: send {"question": "..."}')
    question = question_text(request, body["question"], "question", 'send {"question": "..."}')
    raw = body.get("modality") or []
    if not isinstance(raw, str | list):
        raise BadRequest(f"modality must be a name or a list of names, got {str(raw)[:40]!r}")
    modality = modalities([raw] if isinstance(raw, str) else [str(m) for m in raw])
    k = parse_k(body.get("k"), b.k)
    cancel = threading.Event()
    ans = await until_done(request, b.call(b.ask, question, k, modality, None, cancel), cancel)
    return JSONResponse(b.answer_json(ans))


async def ask_stream(request: Request) -> Response:
    b = backend_of(request)
    q, k, modality = query_params(request)
    return stream_answer(request, b, q, k, modality)


async def thumb(request: Request) -> Response:
    b = backend_of(request)
    hit_id = request.path_params["hit_id"]
    hit = b.cached_hit(hit_id) or await asyncio.wrap_future(b.call(b.find_hit, hit_id))
    data = await asyncio.wrap_future(b.render(b.thumbnail, hit)) if hit is not None else None
    if data is None:
        return JSONResponse({"error": "no picture for this hit"}, status_code=404)
    return Response(data, media_type="image/jpeg", headers=_PRIVATE)


async def media(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    path = backend_of(request).media_path(file_id)
    if path is None:
        return JSONResponse({"error": "no indexed video or audio file with this id"}, status_code=404)
    return FileResponse(path, headers=_PRIVATE)  # answers Range requests with 206 Partial Content


async def _user_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ServerBusy):
        return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": "5"})
    if isinstance(exc, Cancelled):
        return Response(status_code=499)  # nobody reads it
    return JSONResponse({"error": backend_of(request).files.scrub(str(exc))}, status_code=400)


def create_app(
    index: str | Path | Backend,
    *,
    k: int = 5,
    preload: bool = True,
    security: ServeSecurity | None = None,
    **overrides: Any,
) -> Starlette:
    """The ASGI app over an index folder (or a ready `Backend`).

    The pipeline opens when the app starts (its lifespan), with `preload` loading the generator and
    the query encoders then, and closes (releasing the index) when the app stops.

    Args:
        index: Index folder, or a `Backend`.
        k: Default hits per search and per answer.
        preload: Load the models at startup rather than on the first request.
        security: Token, allowed hosts and limits; by default a random token on 127.0.0.1
            (`app.state.security.token`).
        **overrides: Search-time config overrides, e.g. `**{"generate.max_new_tokens": 64}`.
    """
    sec = security or ServeSecurity()
    sec.check()
    if isinstance(index, Backend):
        backend = index
    else:
        backend = Backend.for_index(
            index, k=k, queue=sec.queue, max_question_tokens=sec.max_question_tokens, **overrides
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(backend.start, preload)
        try:
            yield
        finally:
            await asyncio.to_thread(backend.close)

    routes = [
        Route("/", page),
        Route("/api/info", info),
        Route("/api/search", search),
        Route("/api/ask", ask, methods=["POST"]),
        Route("/api/ask/stream", ask_stream),
        *CLI_ROUTES,
        Route("/api/thumb/{hit_id}", thumb),
        Route("/api/media/{file_id}", media),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(Guard, security=sec)],
        exception_handlers={MMRAGError: _user_error},
    )
    app.state.backend = backend
    app.state.security = sec
    app.state.indexer = ServerIndexer(backend)
    return app


__all__ = ["ServeSecurity", "create_app"]
