"""What the server's routes share: reading a request's parameters, and streaming an answer.

Every parameter a client sends is checked here before any work: `k` a whole number in 1..`MAX_K`,
a question within the server's character cap, modalities as names (the pipeline checks them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

from mmrag.serve.backend import Backend, Cancelled
from mmrag.serve.guard import ServeSecurity
from mmrag.types import MMRAGError

try:
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise MMRAGError("mmrag serve needs starlette and uvicorn: pip install 'mmrag[serve]'") from e

log = logging.getLogger("mmrag.serve")
MAX_K = 50


class BadRequest(MMRAGError):
    """A request with missing or malformed parameters (answered with 400)."""


def backend_of(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def parse_k(raw: Any, default: int) -> int:
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


def modalities(values: list[str]) -> list[str] | None:
    """`?modality=image&modality=video` or `?modality=image,video`; the pipeline checks the names."""
    out = [m.strip() for v in values for m in v.split(",") if m.strip()]
    return out or None


def question_text(request: Request, raw: str, what: str, hint: str) -> str:
    q = raw.strip()
    if not q:
        raise BadRequest(f"missing {what}: {hint}")
    cap = security_of(request).max_question_chars
    if len(q) > cap:
        raise BadRequest(f"the {what} is {len(q)} characters long; the limit is {cap}")
    return q


def security_of(request: Request) -> ServeSecurity:
    sec: ServeSecurity = request.app.state.security
    return sec


def query_params(request: Request) -> tuple[str, int, list[str] | None]:
    q = question_text(request, request.query_params.get("q", ""), "query", "give ?q=...")
    k = parse_k(request.query_params.get("k"), backend_of(request).k)
    return q, k, modalities(request.query_params.getlist("modality"))


async def until_done(request: Request, job: Any, cancel: threading.Event) -> Any:
    """Await a worker job; if the client goes away first, set `cancel` (the job stops) and raise."""
    fut = asyncio.wrap_future(job)
    while True:
        done, _ = await asyncio.wait({fut}, timeout=0.25)
        if done:
            return fut.result()
        if await request.is_disconnected():
            cancel.set()
            raise Cancelled("the client went away")


def sse(event: str, data: Any) -> str:
    # One JSON line per event: newlines inside tokens never break the SSE framing.
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def stream_answer(
    request: Request,
    b: Backend,
    q: str,
    k: int,
    modality: list[str] | None,
    options: dict[str, Any] | None = None,
) -> Response:
    """The answer as Server-Sent Events. Generation runs on the worker thread; its tokens cross to
    the event loop through a queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    cancel = threading.Event()

    def on_token(piece: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, piece)

    job = b.call(b.ask, q, k, modality, on_token, cancel, options)
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
                yield sse("token", {"text": piece})
            try:
                yield sse("done", b.answer_json(job.result()))
            except MMRAGError as e:
                yield sse("error", {"error": b.files.scrub(str(e))})
            except Exception:  # the stream has begun (status 200): report in band, not as a 500
                error_id = uuid.uuid4().hex[:12]
                log.exception("ask failed (error id %s)", error_id)
                yield sse("error", {"error": "internal error", "id": error_id})
        finally:
            cancel.set()  # a client gone mid-stream (or a finished one): the generation stops

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


__all__ = [
    "MAX_K",
    "BadRequest",
    "backend_of",
    "modalities",
    "parse_k",
    "query_params",
    "question_text",
    "security_of",
    "sse",
    "stream_answer",
    "until_done",
]
