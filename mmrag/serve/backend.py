"""The server's hold on an index: one pipeline on one worker thread, and what the pages may fetch.

Everything that touches the pipeline (store, file table, encoders, generator) runs on a single
worker thread. That serialises concurrent requests (one generation at a time, the models loaded
once per process), and it keeps the file table's sqlite connection on the thread that opened it.
Thumbnails are rendered on a second thread so that the pictures of one answer load while another
answer is being generated.

Only files recorded in the index's file table are ever opened for a request: a thumbnail is looked
up by point id and a video by its content hash, never by a path the client sends, and the file must
still be the one that was indexed (`mmrag.serve.files`).

The work waiting for the worker thread is bounded (`ServerBusy` past `queue`), and a request whose
client has gone sets its cancel event: a job not yet started is dropped, and a generation stops at
its next token (`mmrag.generate.stopping.cancellable`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mmrag.retrieve.route import doc_label
from mmrag.serve.files import ServedFiles
from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from mmrag.answer.ask import Answer
    from mmrag.pipeline import Pipeline
    from mmrag.retrieve.hybrid import Retrieval

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

_HIT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FILE_ID = re.compile(r"^[0-9a-f]{16,128}$")
PICTURED = ("image", "page", "video")
PLAYED = ("video", "audio")
"""Modalities whose hits the page plays from `t_start` (`/api/media/{file_id}`)."""
"""Modalities whose hits have a picture (the photo, the rendered page, the clip's keyframe)."""


class ServerBusy(MMRAGError):
    """More requests wait for the models than the queue holds (answered with 429)."""


class Cancelled(MMRAGError):
    """The client went away before its request was done."""


class _LRU(Generic[K, V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class Backend:
    """An open index served to concurrent requests.

    Args:
        open_pipeline: Opens the pipeline; called on the worker thread by `start`.
        k: Default number of hits for search and ask.
        thumb_size: Longest side of thumbnails, in pixels.
        queue: Jobs that may wait for the worker thread; one more raises `ServerBusy`.
        max_question_tokens: Longest question, in the generator's tokens (longer: `MMRAGError`).

    Example:
        >>> b = Backend.for_index("./idx", **{"generate.max_new_tokens": 64})  # doctest: +SKIP
        >>> b.start(); hits = b.call(b.search, "a cat").result(); b.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        open_pipeline: Callable[[], Pipeline],
        *,
        k: int = 5,
        thumb_size: int = 320,
        queue: int = 16,
        max_question_tokens: int = 512,
    ) -> None:
        self._open = open_pipeline
        self.k = k
        self.thumb_size = thumb_size
        self.queue = queue
        self.max_question_tokens = max_question_tokens
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="mmrag-pipeline")
        self._media = ThreadPoolExecutor(1, thread_name_prefix="mmrag-media")
        self._pipe: Pipeline | None = None
        self._closed = False
        self._hits: _LRU[str, Hit] = _LRU(4096)
        self._thumbs: _LRU[str, bytes] = _LRU(512)
        self.files = ServedFiles([], [])
        # PDFium is not thread-safe: a generator that reads images renders pages on the worker
        # while thumbnails render on the media thread, so both take this lock.
        self._render_lock = threading.Lock()

    @classmethod
    def for_index(
        cls,
        index: str | Path,
        *,
        k: int = 5,
        queue: int = 16,
        max_question_tokens: int = 512,
        **overrides: Any,
    ) -> Backend:
        """A backend over an existing index folder, with search-time overrides (`generate.model`, ...)."""
        from mmrag.pipeline import Pipeline

        return cls(
            lambda: Pipeline.load(index, **overrides),
            k=k,
            queue=queue,
            max_question_tokens=max_question_tokens,
        )

    # -- lifecycle (call from any thread) -----------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run `fn(*args)` on the pipeline's worker thread; `ServerBusy` when `queue` jobs wait already."""
        with self._pending_lock:
            if self._pending >= self.queue:
                raise ServerBusy(f"the server is busy ({self._pending} requests waiting); try again shortly")
            self._pending += 1
        job = self._worker.submit(fn, *args)
        job.add_done_callback(self._release)
        return job

    def _release(self, _: Future[Any]) -> None:
        with self._pending_lock:
            self._pending -= 1

    def render(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run `fn(*args)` on the media thread."""
        return self._media.submit(fn, *args)

    def start(self, preload: bool = True) -> None:
        """Open the pipeline and, with `preload`, load the generator and the query encoders now.

        A second call does nothing. Raises what opening the index raises (`IndexLockedError`, ...).
        """
        self._worker.submit(self._start, preload).result()

    def close(self) -> None:
        """Release the pipeline (and the index lock) and stop the threads; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._worker.submit(self._close).result()
        finally:
            self._worker.shutdown(wait=True)
            self._media.shutdown(wait=True)

    @property
    def pipe(self) -> Pipeline:
        if self._pipe is None:
            raise MMRAGError("the server's pipeline is not open (Backend.start was not called)")
        return self._pipe

    # -- on the worker thread -----------------------------------------------------------------------
    def _start(self, preload: bool) -> None:
        if self._pipe is not None:  # started already (the CLI starts it to report errors before serving)
            return
        self._pipe = self._open()
        try:
            self._pipe.store  # noqa: B018 - open the store now: a locked index fails here, not on a request
            self.refresh_files()
            if preload:
                from mmrag.generate.loader import load_generator

                load_generator(self._pipe.config.generate)
                self._pipe.search("warm up", k=1)  # loads the query encoders
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    def refresh_files(self) -> None:
        """Re-read which files the index holds (only these may be opened for a request)."""
        table = self.pipe.files
        self.files = ServedFiles(table.all(), table.roots(), Path(self.pipe.index_dir))

    def search(self, query: str, k: int | None = None, modality: list[str] | None = None) -> list[Hit]:
        """`Pipeline.search`, remembering the hits so that their thumbnails can be served."""
        hits = self.pipe.search(query, k=k or self.k, modality=modality or None)
        for h in hits:
            self._hits.put(h.id, h)
        return hits

    def retrieve(self, query: str, k: int | None = None, options: dict[str, Any] | None = None) -> Retrieval:
        """`Pipeline.retrieve` with filters and retrieval options (what `mmrag search` sends)."""
        found = self.pipe.retrieve(query, k=k or self.k, **(options or {}))
        for h in found.hits:
            self._hits.put(h.id, h)
        return found

    def ask(
        self,
        question: str,
        k: int | None = None,
        modality: list[str] | None = None,
        on_token: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        options: dict[str, Any] | None = None,
    ) -> Answer:
        """`Pipeline.ask`, remembering the sources' hits. A set `cancel` drops the job before it starts
        and stops its generation at the next token (`Cancelled`). `options`: `multi_hop`, `path` and
        the retrieval options of `Pipeline.retrieve` (what `mmrag ask` sends)."""
        from mmrag.answer.ask import Answer
        from mmrag.generate.loader import load_generator
        from mmrag.generate.stopping import cancellable

        cancel = cancel or threading.Event()
        if cancel.is_set():
            raise Cancelled("the client went away")
        gen = load_generator(self.pipe.config.generate)
        tokens = question_tokens(gen, question)
        if tokens > self.max_question_tokens:
            raise MMRAGError(f"the question is {tokens} tokens long; the limit is {self.max_question_tokens}")

        def each(piece: str) -> None:
            if cancel.is_set():
                raise Cancelled("the client went away")
            if on_token is not None:
                on_token(piece)

        with self._render_lock if gen.reads_images else contextlib.nullcontext(), cancellable(cancel):
            ans = self.pipe.ask(
                question,
                k=k or self.k,
                modality=modality or None,
                on_token=each if on_token else None,
                **(options or {}),
            )
        if cancel.is_set():
            raise Cancelled("the client went away")
        assert isinstance(ans, Answer)  # no video/choices given: a plain answer
        for s in ans.sources:
            self._hits.put(s.hit.id, s.hit)
        return ans

    def info(self, documents: bool = False) -> dict[str, Any]:
        """`Pipeline.info` with the server's settings (and with `documents`, the documents' metadata
        as `mmrag info` lists them), paths in their public form."""
        data = {**self.pipe.info(), "serve": {"k": self.k}}
        if documents:
            data["documents"] = self.pipe.router().documents()
        return self.files.public_json(data)

    def find_hit(self, hit_id: str) -> Hit | None:
        """A point by id: from the hits served so far, else read from the store by its id."""
        if not _HIT_ID.match(hit_id):
            return None
        hit = self._hits.get(hit_id)
        if hit is not None:
            return hit
        rows = self.pipe.store.get([hit_id])
        if not rows:
            return None
        from mmrag.retrieve.query import to_hits
        from mmrag.store.base import ScoredPoint

        hit = to_hits([ScoredPoint(rows[0]["id"], 0.0, rows[0]["payload"])])[0]
        self._hits.put(hit_id, hit)
        return hit

    # -- from any thread ----------------------------------------------------------------------------
    def cached_hit(self, hit_id: str) -> Hit | None:
        return self._hits.get(hit_id) if _HIT_ID.match(hit_id) else None

    def media_path(self, file_id: str) -> Path | None:
        """The video or audio file with this content hash, if the index holds one and it is still the
        file that was indexed (`ServedFiles.servable`); None otherwise."""
        from mmrag.ingest.discover import AUDIO_EXTS, VIDEO_EXTS

        path = self.files.by_hash.get(file_id) if _FILE_ID.match(file_id) else None
        if path is None or Path(path).suffix.lower() not in VIDEO_EXTS | AUDIO_EXTS:
            return None
        return self.files.servable(path)

    def thumbnail(self, hit: Hit) -> bytes | None:
        """A JPEG of the hit's picture (longest side `thumb_size`); None for text or unreadable files.

        Run it on the media thread (`render`): it decodes images, PDF pages and video frames.
        """
        if hit.modality not in PICTURED:
            return None
        real = self.files.servable(hit.path)  # checked on every request: the cache is no way around it
        if real is None:
            return None
        cached = self._thumbs.get(hit.id)
        if cached is not None:
            return cached
        from mmrag.ingest.render import hit_image

        with self._render_lock:
            img = hit_image(dataclasses.replace(hit, path=str(real)))
        if img is None:
            return None
        img = img.convert("RGB")
        img.thumbnail((self.thumb_size, self.thumb_size))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=82)
        data = buf.getvalue()
        self._thumbs.put(hit.id, data)
        return data

    # -- JSON -----------------------------------------------------------------------------------------
    def hit_json(self, hit: Hit) -> dict[str, Any]:
        """A hit for the page: its fields, locator, file name, and the URLs of its picture and of the
        video or audio file it plays from (`media`)."""
        d = {k: v for k, v in hit.to_dict().items() if k != "payload"}
        file_id = str(hit.payload.get("file_hash") or "")
        d.update(name=Path(hit.path).name, locator=hit.locator(), file_id=file_id or None)
        d["path"] = self.files.public(hit.path)
        d["document"] = doc_label(hit.payload) or None  # "Acme Inc 10-K FY2022" (mmrag/ingest/meta.py)
        d["thumb"] = f"/api/thumb/{hit.id}" if hit.modality in PICTURED else None
        d["media"] = f"/api/media/{file_id}" if hit.modality in PLAYED and file_id else None
        return d

    def answer_json(self, ans: Answer) -> dict[str, Any]:
        """`Answer.to_dict()` with each source's picture and video URLs."""
        d = ans.to_dict()
        for src, s in zip(d["sources"], ans.sources, strict=True):
            hit = self.hit_json(s.hit)
            src.update({k: v for k, v in hit.items() if k not in src}, path=hit["path"])
        for drop in d.get("dropped") or []:
            if isinstance(drop.get("path"), str):
                drop["path"] = self.files.public(drop["path"])
        return d


def question_tokens(gen: Any, text: str) -> int:
    """`text`'s length in the generator's tokens (its tokenizer, or its processor's); 0 without one."""
    backend = getattr(gen, "backend", gen)
    tok = getattr(backend, "tokenizer", None) or getattr(
        getattr(backend, "processor", None), "tokenizer", None
    )
    if tok is None:
        return 0
    return len(tok(text, add_special_tokens=False)["input_ids"])


__all__ = ["PICTURED", "PLAYED", "Backend", "Cancelled", "ServerBusy"]
