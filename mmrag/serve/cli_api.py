"""The endpoints the `mmrag` command line uses when a server holds the index (`mmrag.cli.remote`).

    POST /api/retrieve      `{"query", "k"?, "modality"?, "path"?, "pages"?, "time"?, retrieval options}`
                            -> what `mmrag search --json` prints: the hits with their payloads, the
                            chosen k, the filters read from the query, timings
    POST /api/ask/stream    `{"question", "k"?, "modality"?, "path"?, "multi_hop"?, retrieval options}`
                            -> Server-Sent Events as `GET /api/ask/stream` sends them
    POST /api/index         `{"paths": [absolute paths], "strict"?, "follow_symlinks"?}` -> events:
                            `start` (`{"total"}`), one `file` per file indexed, then `done` (the
                            report, as `mmrag index --json` prints it) or `error`

Like every endpoint they need the token. `/api/index` also needs a loopback client: it makes the
server read files named by the request, which only a program on the same machine (the user's own
`mmrag index`, which read the token from the owner-only server file) may ask for. Paths in hits are
in their public form (relative to the indexed roots); the CLI turns them back into local paths.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mmrag.serve.guard import is_loopback
from mmrag.serve.requests import (
    BadRequest,
    backend_of,
    modalities,
    parse_k,
    question_text,
    sse,
    stream_answer,
)
from mmrag.types import IndexReport, MMRAGError

log = logging.getLogger("mmrag.serve")
_TEXT = ("path", "pages", "time", "rerank", "route", "group")
_FLAGS = ("adaptive_k", "hubness", "filters_from_query")
MULTI_HOP = ("decompose", "iterative")


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """The filters and retrieval options of a body, each checked for its type; others refused."""
    out: dict[str, Any] = {}
    for name in _TEXT:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, str) or len(value) > 500:
                raise BadRequest(f"{name} must be a short string")
            out[name] = value
    for name in _FLAGS:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, bool):
                raise BadRequest(f"{name} must be true or false")
            out[name] = value
    raw = body.get("modality")
    if raw is not None:
        if not isinstance(raw, str | list) or not all(isinstance(m, str) for m in raw):
            raise BadRequest("modality must be a name or a list of names")
        out["modality"] = modalities([raw] if isinstance(raw, str) else raw)
    return out


async def retrieve(request: Request) -> Response:
    b = backend_of(request)
    body = await _body(request)
    query = question_text(request, str(body.get("query") or ""), "query", 'send {"query": "..."}')
    k = parse_k(body.get("k"), b.k)
    found = await asyncio.wrap_future(b.call(b.retrieve, query, k, _options(body)))
    out = found.to_dict()
    for hit in out["hits"]:
        hit["path"] = b.files.public(hit["path"])
        if isinstance(hit["payload"].get("path"), str):
            hit["payload"]["path"] = hit["path"]
    return JSONResponse({"query": query, **out})


async def ask_stream(request: Request) -> Response:
    b = backend_of(request)
    body = await _body(request)
    question = question_text(request, str(body.get("question") or ""), "question", 'send {"question": "..."}')
    k = parse_k(body.get("k"), b.k)
    options = _options(body)
    modality = options.pop("modality", None)
    hop = body.get("multi_hop")
    if hop is not None:
        if hop not in MULTI_HOP:
            raise BadRequest(f"multi_hop must be one of {', '.join(MULTI_HOP)}")
        options["multi_hop"] = hop
    for name in ("pages", "time"):  # filters `ask` does not take
        options.pop(name, None)
    return stream_answer(request, b, question, k, modality, options)


async def index(request: Request) -> Response:
    client = request.client.host if request.client else ""
    if not is_loopback(client):
        return JSONResponse({"error": "indexing through the server is for clients on this machine"}, 403)
    body = await _body(request)
    paths = body.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise BadRequest('send {"paths": ["/absolute/path", ...]}')
    if not all(os.path.isabs(p) for p in paths):
        raise BadRequest("paths must be absolute (the server's working folder is not the client's)")
    strict, follow = body.get("strict", False), body.get("follow_symlinks")
    if not isinstance(strict, bool) or not isinstance(follow, bool | None):
        raise BadRequest("strict and follow_symlinks must be true or false")
    indexer, b = request.app.state.indexer, backend_of(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_progress(event: str, data: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (event, data))

    def work() -> IndexReport:
        return indexer.run(paths, strict=strict, follow_symlinks=follow, on_progress=on_progress)

    job = asyncio.ensure_future(asyncio.to_thread(work))
    job.add_done_callback(lambda _: queue.put_nowait(("end", None)))

    async def events() -> AsyncIterator[str]:
        # The run goes on if the client leaves: files already started are finished and recorded.
        yield ": indexing\n\n"
        while True:
            event, data = await queue.get()
            if event == "end":
                break
            yield sse(event, data)
        try:
            report = job.result()
            points = await asyncio.wrap_future(b.call(lambda: b.pipe.store.count()))
        except MMRAGError as e:
            yield sse("error", {"error": b.files.scrub(str(e))})
            return
        except Exception:  # the stream has begun (status 200): report in band, not as a 500
            error_id = uuid.uuid4().hex[:12]
            log.exception("index failed (error id %s)", error_id)
            yield sse("error", {"error": "internal error", "id": error_id})
            return
        yield sse("done", {**report.to_dict(), "points_total": points})

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


CLI_ROUTES = [
    Route("/api/retrieve", retrieve, methods=["POST"]),
    Route("/api/ask/stream", ask_stream, methods=["POST"]),
    Route("/api/index", index, methods=["POST"]),
]

__all__ = ["CLI_ROUTES"]
