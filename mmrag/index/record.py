"""What both indexing paths share: a file's chunks, and recording files once their points are durable.

`Indexer` (the serial path, `mmrag.index.indexer`) and `OverlappedRun` (the overlapped one,
`mmrag.index.overlap`) each hold the same `FileRecorder`: a file whose points are all written is
queued with `record`; `commit` flushes the store and then writes the queued files to the file
table, so a recorded file always has all its points on disk. `delete_stale` drops the points of a
changed file's old version once the new version is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.store.base import SearchFilter
from mmrag.types import Chunk, IngestError, MMRAGError

# What a bad file raises (every indexing path catches the same): anything else stops the run.
FILE_ERRORS = (IngestError, OSError, ValueError, RuntimeError, MemoryError)

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import IngestConfig
    from mmrag.index.folder import FileTable
    from mmrag.store.base import Store


class FileRecorder:
    """Records indexed files in the file table, after a store flush, at most every `commit_seconds`.

    Args:
        store: The store the points go to.
        files: The index's file table.
        commit_seconds: Least time between two commits (a flush costs ~0.25 s); `commit(force=True)`
            commits at once.
    """

    def __init__(self, store: Store, files: FileTable, commit_seconds: float) -> None:
        self.store = store
        self.files = files
        self.commit_seconds = commit_seconds
        self.pending: list[tuple[Any, ...]] = []
        """Files whose points are written but not yet flushed: (path, hash, size, points, mtime_ns,
        dev, inode, stamp)."""
        self._last_commit = time.monotonic()

    def record(
        self,
        path: str,
        digest: str,
        version: Version,
        points: int,
        stamp: str | None = None,
    ) -> None:
        """Queue a file whose points are all written, with its `file_version` when it was hashed
        (a file in a bucket: its size, and None for what it lacks) and its listing `stamp`; it is
        recorded at the next commit."""
        size, mtime_ns, dev, ino = version
        self.pending.append((path, digest, size, points, mtime_ns, dev, ino, stamp))
        self.commit(force=False)

    def commit(self, force: bool) -> None:
        """Flush the store, then record the files whose points it now holds.

        Runs at most every `commit_seconds` unless `force`: a crash redoes at most that much work,
        and a recorded file always has all its points on disk.
        """
        if not self.pending:
            return
        if not force and time.monotonic() - self._last_commit < self.commit_seconds:
            return
        self.store.flush()
        self.files.put_many(self.pending)
        self.pending.clear()
        self._last_commit = time.monotonic()

    def known(self) -> dict[str, str]:
        """Content hash of every recorded file, by path."""
        return {r.path: r.hash for r in self.files.all()}

    def delete_stale(self, path: str, keep_hash: str) -> None:
        """Delete points of `path` written from another version of its content."""
        stale = [
            p["id"]
            for p in self.store.scroll(SearchFilter(paths=[path]))
            if p["payload"].get("file_hash") != keep_hash
        ]
        if stale:
            self.store.delete_ids(stale)


def read_chunks(
    path: Path,
    cfg: IngestConfig,
    ocr: Callable[[Image.Image], str] | None,
    caption_fn: Callable[[list[Image.Image]], list[str]] | None,
) -> Iterator[Chunk]:
    """A file's chunks (`iter_chunks`), captioned when `cfg.caption` and a captioner is given."""
    from mmrag.ingest import iter_chunks

    chunks = iter_chunks(path, cfg, ocr=ocr)
    if cfg.caption and caption_fn is not None:
        from mmrag.index.captions import caption_chunks

        chunks = caption_chunks(chunks, caption_fn, cfg.caption_batch)
    yield from chunks


FileVersion = tuple[int, int, int, int]
"""(size, mtime_ns, device, inode) of a file, links followed."""
Version = tuple[int, int | None, int | None, int | None]
"""A `FileVersion`, or what an object in a bucket has of one (its size; None for the rest)."""


def file_version(path: Path) -> FileVersion:
    """Size, modification time (ns), device and inode: what tells a file rewritten in place (or swapped
    for another) from the one hashed. Recorded in the file table; `mmrag serve` checks it again."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino


def failure_reason(e: BaseException) -> str:
    """A bad file's error as the report shows it (the exception type named when it is not ours)."""
    if isinstance(e, IngestError | MMRAGError):
        return str(e)
    return f"{type(e).__name__}: {e}"
