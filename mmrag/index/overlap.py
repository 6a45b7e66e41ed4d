"""Overlapped indexing: the encoders run on batches that span files while workers read ahead.

The main thread takes the files' chunks in order from `ReadAhead` (hashed, decoded and
preprocessed by worker threads), gathers them into batches of `encoders.batch_size` frames
(several images, pages or clips of different files), runs the encoders once per batch
(`encode_chunks`), then builds and upserts each file's points (`embed_chunks` on the file's share
of the batch). A file is recorded only after its last point is written, so the guarantees of the
serial path hold: a crash leaves unrecorded files that a rerun redoes with the same point ids; a
failing file is reported and its partial points dropped; the old points of a changed file are
deleted only once the new version is written; `strict` stops at the first bad file, after the
files before it are written and recorded, with nothing after it touched.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.encoders.base import PixelEncoder
from mmrag.encoders.embedders import ChunkVectors, encode_chunks
from mmrag.index.record import (
    FILE_ERRORS,
    FileRecorder,
    FileVersion,
    failure_reason,
    file_version,
    read_chunks,
)
from mmrag.index.workers import End, Failed, FileFeed, Header, Item, ReadAhead, serialized
from mmrag.types import FileError, IndexReport, IngestError, MMRAGError, NothingToIndex

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import MMRAGConfig
    from mmrag.encoders.embedders import Embedders


@dataclass(eq=False)
class _File:
    """A file between its first chunk and its record."""

    path: Path
    seq: int  # position in the run
    digest: str = ""
    version: FileVersion = (0, 0, 0, 0)
    skip: bool = False
    items: int = 0  # chunks read
    queued: int = 0  # chunks in the current batch, not yet written
    written: list[str] = field(default_factory=list)
    failed: bool = False


class OverlappedRun:
    """One `Indexer.run` with workers (`ingest.workers` > 0).

    Args:
        recorder: The store and file table, shared with the indexer: points go to `recorder.store`,
            finished files to `recorder.record`, a changed file's old points to `recorder.delete_stale`.
        embedders: The encoders.
        cfg: Encoder batch size and ingest settings.
        embed: `embed_chunks`, looked up by the caller at call time (tests wrap it).
        report: Filled in place.
        advance: Progress callback `(path, files_done, points=0)`.
        strict: Stop at the first bad file.
        on_file: Called with each file done (path, points written; 0 when skipped).
        workers: Reader threads.
        ocr: OCR for the readers (called from one thread at a time).
        caption_fn: Captioner for the readers (called from one thread at a time).
    """

    def __init__(
        self,
        recorder: FileRecorder,
        embedders: Embedders,
        cfg: MMRAGConfig,
        *,
        embed: Callable[..., Any],
        report: IndexReport,
        advance: Callable[..., None],
        strict: bool,
        on_file: Callable[[Path, int], None] | None,
        workers: int,
        ocr: Callable[[Image.Image], str] | None = None,
        caption_fn: Callable[[list[Image.Image]], list[str]] | None = None,
    ) -> None:
        self.recorder, self.store, self.emb, self.ingest = recorder, recorder.store, embedders, cfg.ingest
        self.embed, self.report, self.advance = embed, report, advance
        self.strict, self.on_file, self.workers = strict, on_file, workers
        self.batch_size = max(1, cfg.encoders.batch_size)
        self.max_chunks = 4 * self.batch_size  # text chunks ride along with the frames
        self._batch: list[tuple[_File, Item]] = []
        self._frames = 0
        self._waiting: deque[_File] = deque()  # read to the end, record pending, in file order
        self._open: dict[int, _File] = {}  # started, neither recorded nor failed
        self._stop: BaseException | None = None  # strict: the first bad file's error
        self._stop_seq = 0  # ... and its position: files after it are not written
        self._seq = 0
        self._known: dict[str, str] = {}
        self._load_lock = threading.Lock()
        self._ocr = serialized(ocr)
        self._caption = serialized(caption_fn)

    # -- main thread ---------------------------------------------------------------------------
    def run(self, found: Sequence[Path]) -> None:
        """Index `found`; partial points of unfinished files are dropped if it raises."""
        self._known = self.recorder.known()
        budget = 2 * self.batch_size
        try:
            with ReadAhead(found, self._prepare, self.workers, budget, self.max_chunks) as ahead:
                for feed in ahead:
                    self._read(feed)
                    if self._stop is not None:
                        break
                self._flush()  # the last batch; after a strict stop, the files before the bad one
                if self._stop is not None:
                    raise self._stop
        except BaseException:
            for f in self._open.values():
                if f.written:
                    self.store.delete_ids(f.written)
            raise

    def _read(self, feed: FileFeed) -> None:
        path = feed.path
        self.advance(path, 0)
        self._seq += 1
        state = _File(path, self._seq)
        for msg in feed:
            if isinstance(msg, Header):
                state.digest, state.version, state.skip = msg.digest, msg.version, msg.skip
                if not msg.skip:
                    self._open[id(state)] = state
            elif state.failed:
                continue  # it broke the encoders or the store: drain the rest of it
            elif isinstance(msg, Item):
                self._batch.append((state, msg))
                state.items += 1
                state.queued += 1
                self._frames += msg.frames
                if self._frames >= self.batch_size or len(self._batch) >= self.max_chunks:
                    self._flush()
                    if self._stop is not None:
                        return
            elif isinstance(msg, End):
                self._waiting.append(state)
                self._finish_ready()
            elif isinstance(msg, Failed):
                if not isinstance(msg.error, FILE_ERRORS):
                    self._drop(state)
                    self._flush()  # the files before it are done: write and record them first
                    raise msg.error
                self._fail(state, msg.error)

    def _flush(self) -> None:
        """Encode the batch in one pass, write each file's points, record the files now complete."""
        batch, self._batch, self._frames = self._batch, [], 0
        if batch:
            emb, bs = self.emb, self.batch_size
            vectors: ChunkVectors | None
            try:
                vectors = encode_chunks(
                    [it.chunk for _, it in batch], emb, bs, [it.pixels for _, it in batch]
                )
            except FILE_ERRORS:
                vectors = None  # one file breaks the encoders: encode file by file to find it
            for state, lo, hi in _segments(batch):
                if self._stop is not None and state.seq > self._stop_seq:
                    break  # strict: nothing after the bad file is written
                if state.failed:
                    continue
                items = [it for _, it in batch[lo:hi]]
                chunks = [it.chunk for it in items]
                try:
                    vec = vectors.slice(lo, hi) if vectors is not None else None
                    if vec is None:
                        vec = encode_chunks(chunks, emb, bs, [it.pixels for it in items])
                    points = self.embed(chunks, state.digest, emb, batch_size=bs, vectors=vec)
                    self.store.upsert(points)
                except FILE_ERRORS as e:
                    self._fail(state, e)
                    continue
                state.written.extend(p.id for p in points)
                state.queued -= hi - lo
                self.advance(state.path, 0, len(state.written))
                self._finish_ready()  # record each file as soon as its last point is written
        self._finish_ready()

    def _finish_ready(self) -> None:
        """Record the files at the front of the line whose points are all written."""
        while self._waiting:
            state = self._waiting[0]
            if (not state.failed and state.queued) or (self._stop is not None and state.seq > self._stop_seq):
                return
            self._waiting.popleft()
            if state.failed:
                continue
            if state.skip:
                self.report.files_skipped += 1
                self._done(state, 0)
                continue
            try:
                if not state.items:
                    raise IngestError("no content found (nothing to index)")
                if file_version(state.path) != state.version:
                    raise IngestError(
                        "file changed while it was being indexed; index it again once it is complete"
                    )
            except FILE_ERRORS as e:
                self._fail(state, e)
                continue
            key = str(state.path)
            self.recorder.delete_stale(key, state.digest)
            self._open.pop(id(state), None)
            self.recorder.record(key, state.digest, state.version, len(state.written))
            self.report.files_indexed += 1
            self.report.points_written += len(state.written)
            self._done(state, len(state.written))

    def _done(self, state: _File, written: int) -> None:
        if self.on_file is not None:
            self.on_file(state.path, written)
        self.advance(state.path, 1)

    def _fail(self, state: _File, error: BaseException) -> None:
        """Drop a bad file and report it (or stop there, if strict)."""
        self._drop(state)
        if isinstance(error, NothingToIndex):
            self.report.ignored.append(FileError(str(state.path), str(error)))
        elif self.strict:
            if self._stop is None or state.seq < self._stop_seq:
                self._stop = MMRAGError(f"{state.path}: {failure_reason(error)}")
                self._stop.__cause__ = error
                self._stop_seq = state.seq
            return
        else:
            self.report.errors.append(FileError(str(state.path), failure_reason(error)))
        self.advance(state.path, 1)

    def _drop(self, state: _File) -> None:
        """Forget a file's chunks in the batch and delete the points it has written."""
        state.failed = True
        self._open.pop(id(state), None)
        if state.written:
            self.store.delete_ids(state.written)
            state.written = []
        if state.queued:
            self._batch = [(s, it) for s, it in self._batch if s is not state]
            self._frames = sum(it.frames for _, it in self._batch)
            state.queued = 0

    # -- worker threads ------------------------------------------------------------------------
    def _prepare(self, path: Path, feed: FileFeed) -> None:
        """Hash, read and preprocess one file into its feed (runs on a worker thread)."""
        from mmrag.ingest import file_hash

        version = file_version(path)
        digest = file_hash(path)
        skip = self._known.get(str(path)) == digest
        feed.put(Header(digest, version, skip))
        if skip:
            return
        for chunk in read_chunks(path, self.ingest, self._ocr, self._caption):
            pixels = None
            if chunk.images:
                enc = self._image_encoder()
                if isinstance(enc, PixelEncoder):
                    pixels = enc.preprocess(chunk.images)
                # the decoded images are not needed again, unless the page encoder reads this page
                page_encoder = chunk.modality == "page" and bool(getattr(self.emb.cfg, "page", None))
                if (pixels is not None or enc is None) and not page_encoder:
                    chunk = dataclasses.replace(chunk, images=[])
            feed.put(Item(chunk, pixels))

    def _image_encoder(self) -> Any:
        with self._load_lock:  # the first image loads the encoder: once, not once per worker
            return self.emb.image


def _segments(batch: list[tuple[_File, Item]]) -> list[tuple[_File, int, int]]:
    """Runs of consecutive chunks of one file: (file, start, stop)."""
    out: list[tuple[_File, int, int]] = []
    start = 0
    for i in range(1, len(batch) + 1):
        if i == len(batch) or batch[i][0] is not batch[start][0]:
            out.append((batch[start][0], start, i))
            start = i
    return out
