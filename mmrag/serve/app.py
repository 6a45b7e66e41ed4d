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
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mmrag.serve.backend import Backend, Cancelled, ServerBusy
from mmrag.serve.guard import Guard, ServeSecurity
from mmrag.types import MMRAGError

try:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
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
    "Cache-Control": "no-cache",
}
_PRIVATE = {"Cache-Control": "private, max-age=3600"}


class BadRequest(MMRAGError):
    """A request with missing or malformed parameters (answered with 400)."""


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _k(raw: Any, default: int) -> int:
    """A whole number in 1..MAX_K: digits in a query string, an integer (not a bool or float) in JSON."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) <= 6:
        k = int(raw)
    elif type(raw) is int:
        k = raw
    else:
        raise BadRequest(f"k must be a whole number from 1 to {MAX_K}, got {str(raw)[:20]!r}")
    if not 1 <= k <= MAX_K:
        raise BadRequest(f"k must be between 1 and {MAX_K}, got {k}")
    return k


def _modalities(values: list[str]) -> list[str] | None:
    """`?modality=image&modality=video` or `?modality=image,video`; the pipeline checks the names."""
    out = [m.strip() for v in values for m in v.split(",") if m.strip()]
    return out or None


def _question(request: Request, raw: str, what: str, hint: str) -> str:
    q = raw.strip()
    if not q:
        raise BadRequest(f"missing {what}: {hint}")
    cap = _security(request).max_question_chars
    if len(q) > cap:
        raise BadRequest(f"the {what} is {len(q)} characters long; the limit is {cap}")
    return q


def _security(request: Request) -> ServeSecurity:
    sec: ServeSecurity = request.app.state.security
    return sec


def _query(request: Request) -> tuple[str, int, list[str] | None]:
    q = _question(request, request.query_params.get("q", ""), "query", "give ?q=...")
    k = _k(request.query_params.get("k"), _backend(request).k)
    return q, k, _modalities(request.query_params.getlist("modality"))


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


async def _until_done(request: Request, job: Any, cancel: threading.Event) -> Any:
    """Await a worker job; if the client goes away first, set `cancel` (the job stops) and raise."""
    fut = asyncio.wrap_future(job)
    while True:
        done, _ = await asyncio.wait({fut}, timeout=0.25)
        if done:
            return fut.result()
        if await request.is_disconnected():
            cancel.set()
            raise Cancelled("the client went away")


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
    if not isinstance(body, dict) or not isinstance(body.get("question"), str):
        raise BadRequest('missing question: send {"question": "..."}')
    question = _question(request, body["question"], "question", 'send {"question": "..."}')
    raw = body.get("modality") or []
    if not isinstance(raw, str | list):
        raise BadRequest(f"modality must be a name or a list of names, got {str(raw)[:40]!r}")
    modality = _modalities([raw] if isinstance(raw, str) else [str(m) for m in raw])
    k = _k(body.get("k"), b.k)
    cancel = threading.Event()
    ans = await _until_done(request, b.call(b.ask, question, k, modality, None, cancel), cancel)
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

    cancel = threading.Event()

    def on_token(piece: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, piece)

    job = b.call(b.ask, q, k, modality, on_token, cancel)
    job.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, None))

    async def events() -> AsyncIterator[str]:
        try:
            yield ": generating\n\n"  # a comment: the browser sees the stream open before the first token
            while True:
                try:
                    piece = await asyncio.wait_for(queue.get(), timeout=0.5)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    continue
                if piece is None:
                    break
                yield _sse("token", {"text": piece})
            try:
                yield _sse("done", b.answer_json(job.result()))
            except MMRAGError as e:
                yield _sse("error", {"error": b.files.scrub(str(e))})
            except Exception:  # the stream has begun (status 200): report in band, not as a 500
                error_id = uuid.uuid4().hex[:12]
                log.exception("ask failed (error id %s)", error_id)
                yield _sse("error", {"error": "internal error", "id": error_id})
        finally:
            cancel.set()  # a client gone mid-stream (or a finished one): the generation stops

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def thumb(request: Request) -> Response:
    b = _backend(request)
    hit_id = request.path_params["hit_id"]
    hit = b.cached_hit(hit_id) or await asyncio.wrap_future(b.call(b.find_hit, hit_id))
    data = await asyncio.wrap_future(b.render(b.thumbnail, hit)) if hit is not None else None
    if data is None:
        return JSONResponse({"error": "no picture for this hit"}, status_code=404)
    return Response(data, media_type="image/jpeg", headers=_PRIVATE)


async def media(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    path = _backend(request).media_path(file_id)
    if path is None:
        return JSONResponse({"error": "no indexed video or audio file with this id"}, status_code=404)
    return FileResponse(path, headers=_PRIVATE)  # answers Range requests with 206 Partial Content


async def _user_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ServerBusy):
        return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": "5"})
    if isinstance(exc, Cancelled):
        return Response(status_code=499)  # nobody reads it
    return JSONResponse({"error": _backend(request).files.scrub(str(exc))}, status_code=400)


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
    return app


__all__ = ["ServeSecurity", "create_app"]
