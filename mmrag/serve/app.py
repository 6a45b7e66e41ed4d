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

>>> from mmrag.serve.app import create_app
>>> app = create_app("./idx")   # doctest: +SKIP  (then: uvicorn.run(app))
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mmrag.serve.backend import Backend
from mmrag.types import MMRAGError

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise MMRAGError("mmrag serve needs starlette and uvicorn: pip install 'mmrag[serve]'") from e

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("mmrag.serve")
MAX_K = 50
# The page loads only its own script, styles, thumbnails and videos.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class BadRequest(MMRAGError):
    """A request with missing or malformed parameters (answered with 400)."""


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _k(raw: Any, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        k = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"k must be a whole number, got {raw!r}") from None
    if not 1 <= k <= MAX_K:
        raise BadRequest(f"k must be between 1 and {MAX_K}, got {k}")
    return k


def _modalities(values: list[str]) -> list[str] | None:
    """`?modality=image&modality=video` or `?modality=image,video`; the pipeline checks the names."""
    out = [m.strip() for v in values for m in v.split(",") if m.strip()]
    return out or None


def _query(request: Request) -> tuple[str, int, list[str] | None]:
    q = request.query_params.get("q", "").strip()
    if not q:
        raise BadRequest("missing query: give ?q=...")
    k = _k(request.query_params.get("k"), _backend(request).k)
    return q, k, _modalities(request.query_params.getlist("modality"))


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


async def info(request: Request) -> Response:
    b = _backend(request)
    return JSONResponse(await asyncio.wrap_future(b.call(b.info)))


async def search(request: Request) -> Response:
    b = _backend(request)
    q, k, modality = _query(request)
    hits = await asyncio.wrap_future(b.call(b.search, q, k, modality))
    return JSONResponse({"query": q, "hits": [b.hit_json(h) for h in hits]})


async def ask(request: Request) -> Response:
    b = _backend(request)
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest('the body must be JSON: {"question": "..."}') from None
    if not isinstance(body, dict) or not str(body.get("question") or "").strip():
        raise BadRequest('missing question: send {"question": "..."}')
    raw = body.get("modality") or []
    if not isinstance(raw, str | list):
        raise BadRequest(f"modality must be a name or a list of names, got {raw!r}")
    modality = _modalities([raw] if isinstance(raw, str) else [str(m) for m in raw])
    ans = await asyncio.wrap_future(
        b.call(b.ask, str(body["question"]).strip(), _k(body.get("k"), b.k), modality)
    )
    return JSONResponse(b.answer_json(ans))


def _sse(event: str, data: Any) -> str:
    # One JSON line per event: newlines inside tokens never break the SSE framing.
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def ask_stream(request: Request) -> Response:
    """Generation runs on the worker thread; its tokens cross to the event loop through a queue."""
    b = _backend(request)
    q, k, modality = _query(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_token(piece: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, piece)

    job = b.call(b.ask, q, k, modality, on_token)
    job.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, None))

    async def events() -> AsyncIterator[str]:
        yield ": generating\n\n"  # a comment: the browser sees the stream open before the first token
        while (piece := await queue.get()) is not None:
            yield _sse("token", {"text": piece})
        try:
            yield _sse("done", b.answer_json(job.result()))
        except MMRAGError as e:
            yield _sse("error", {"error": str(e)})
        except Exception as e:  # the stream has begun (status 200): report in band, not as a 500
            log.exception("ask failed")
            yield _sse("error", {"error": f"internal error: {type(e).__name__}: {e}"})

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def thumb(request: Request) -> Response:
    b = _backend(request)
    hit_id = request.path_params["hit_id"]
    hit = b.cached_hit(hit_id) or await asyncio.wrap_future(b.call(b.find_hit, hit_id))
    data = await asyncio.wrap_future(b.render(b.thumbnail, hit)) if hit is not None else None
    if data is None:
        return JSONResponse({"error": f"no picture for hit {hit_id!r}"}, status_code=404)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


async def media(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    path = _backend(request).media_path(file_id)
    if path is None:
        return JSONResponse({"error": f"no indexed video or audio file with id {file_id!r}"}, status_code=404)
    return FileResponse(path)  # answers Range requests with 206 Partial Content


async def _user_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


def create_app(
    index: str | Path | Backend, *, k: int = 5, preload: bool = True, **overrides: Any
) -> Starlette:
    """The ASGI app over an index folder (or a ready `Backend`).

    The pipeline opens when the app starts (its lifespan), with `preload` loading the generator and
    the query encoders then, and closes (releasing the index) when the app stops.

    Args:
        index: Index folder, or a `Backend`.
        k: Default hits per search and per answer.
        preload: Load the models at startup rather than on the first request.
        **overrides: Search-time config overrides, e.g. `**{"generate.max_new_tokens": 64}`.
    """
    backend = index if isinstance(index, Backend) else Backend.for_index(index, k=k, **overrides)

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
        Route("/api/thumb/{hit_id}", thumb),
        Route("/api/media/{file_id}", media),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={MMRAGError: _user_error})
    app.state.backend = backend
    return app


__all__ = ["create_app"]
