"""Read-ahead for indexing: worker threads hash, read, decode and preprocess the next files.

While the main thread runs the encoders on one batch, `ReadAhead` keeps the files after it in
flight on a few threads: each worker hashes a file (`Header`), reads its chunks and turns their
frames into model-ready tensors (`PixelEncoder.preprocess`), and queues them as `Item`s in the
file's `FileFeed`. The main thread takes the feeds in the files' order, so points, records and
callbacks come in the same order as without workers.

Memory is bounded: the frames queued across all feeds stay under a budget (about two batches), and
each feed holds at most `max_items` chunks. The feed the main thread is reading (the head) ignores
the budget, so the file it waits for can always make progress: no deadlock, whatever the sizes.

The workers' time goes to decoders that release the GIL (Pillow, PDFium, PyAV, the image
processors' NumPy), so they overlap the encoders' forward passes, which release it too. PDFium
is not thread-safe: `mmrag.ingest.pdf` serialises its calls with a lock.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.encoders.base import Pixels, pixel_rows
from mmrag.types import Chunk

# Seconds a blocked worker waits before looking again whether the run was cancelled.
_POLL = 0.1


def resolve_workers(workers: int | None, device: str) -> int:
    """`ingest.workers` as a thread count: None is one per core, up to 4 on CPU and 8 on a GPU."""
    if workers is not None:
        return max(0, int(workers))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8 if device.startswith("cuda") else 4, cores))


@dataclass
class Header:
    """A file's content hash and its `file_version` seen before hashing; `skip` when unchanged."""

    digest: str
    version: tuple[int, int, int, int]
    skip: bool


@dataclass
class Item:
    """One chunk; when the encoder preprocessed its frames, they are in `pixels` and `chunk.images`
    is emptied (the decoded images are not kept twice)."""

    chunk: Chunk
    pixels: Pixels | None = None

    @property
    def frames(self) -> int:
        """Images the chunk sends through the image encoder."""
        return pixel_rows(self.pixels) if self.pixels is not None else len(self.chunk.images)


@dataclass
class End:
    """The file's chunks are all queued."""


@dataclass
class Failed:
    """Reading the file raised `error` (re-raised by the main thread, which decides what it means)."""

    error: BaseException


Message = Header | Item | End | Failed


class Cancelled(Exception):
    """The run stopped; a worker leaves the file it is reading."""


class _Budget:
    """Frames queued across all feeds, under one condition variable."""

    def __init__(self, frames: int) -> None:
        self.cond = threading.Condition()
        self.limit = frames
        self.used = 0
        self.cancelled = False


class FileFeed:
    """The messages of one file, from its worker to the main thread, in order."""

    def __init__(self, path: Path, budget: _Budget, max_items: int) -> None:
        self.path = path
        self._budget = budget
        self._max_items = max_items
        self._queue: deque[Message] = deque()
        self._items = 0
        self.head = False  # set by the main thread when it starts reading this feed

    def put(self, msg: Message) -> None:
        """Queue a message; an `Item` waits while this feed is full or the budget is spent.

        Raises:
            Cancelled: the run was stopped.
        """
        b = self._budget
        weight = msg.frames if isinstance(msg, Item) else 0
        with b.cond:
            if isinstance(msg, Item):
                while not b.cancelled and (
                    self._items >= self._max_items or (weight and b.used >= b.limit and not self.head)
                ):
                    b.cond.wait(_POLL)
                self._items += 1
                b.used += weight
            if b.cancelled:
                raise Cancelled
            self._queue.append(msg)
            b.cond.notify_all()

    def get(self) -> Message:
        """The next message (waits for the worker)."""
        b = self._budget
        with b.cond:
            if not self.head:
                self.head = True
                b.cond.notify_all()
            while not self._queue:
                b.cond.wait()
            msg = self._queue.popleft()
            if isinstance(msg, Item):
                self._items -= 1
                b.used -= msg.frames
            b.cond.notify_all()
            return msg

    def __iter__(self) -> Iterator[Message]:
        """Messages up to and including `End` or `Failed`."""
        while True:
            msg = self.get()
            yield msg
            if isinstance(msg, End | Failed):
                return


class ReadAhead:
    """Files in order as `FileFeed`s, each filled by `prepare(path, feed)` on a worker thread.

    Use as a context manager: leaving it cancels the workers and waits for them.

    Args:
        paths: The files, in indexing order.
        prepare: Reads one file into its feed (`Header`, `Item`s); runs on a worker thread.
        workers: Threads (at least 1).
        budget_frames: Frames queued across feeds before workers of later files wait.
        max_items: Chunks one feed holds before its worker waits.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        prepare: Callable[[Path, FileFeed], None],
        workers: int,
        budget_frames: int,
        max_items: int,
    ) -> None:
        self._paths = list(paths)
        self._prepare = prepare
        self._budget = _Budget(max(1, budget_frames))
        self._max_items = max(1, max_items)
        # Files queued ahead of the one being read: enough one-image files to fill the budget.
        self._window = max(1, budget_frames) + workers
        self._jobs: deque[FileFeed] = deque()
        self._threads = [
            threading.Thread(target=self._work, name=f"mmrag-read-{i}", daemon=True)
            for i in range(max(1, workers))
        ]

    def __enter__(self) -> ReadAhead:
        _settle_torch_pool()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (each leaves its file at its next queued chunk) and wait for them."""
        with self._budget.cond:
            self._budget.cancelled = True
            self._budget.cond.notify_all()
        for t in self._threads:
            if t.is_alive():
                t.join()

    def __iter__(self) -> Iterator[FileFeed]:
        feeds: deque[FileFeed] = deque()
        pending = iter(self._paths)

        def submit(n: int) -> None:
            for path in pending:
                feed = FileFeed(path, self._budget, self._max_items)
                feeds.append(feed)
                with self._budget.cond:
                    self._jobs.append(feed)
                    self._budget.cond.notify_all()
                if len(feeds) >= n:
                    return

        submit(self._window + 1)
        while feeds:
            feed = feeds.popleft()
            submit(self._window + 1)
            yield feed

    def _work(self) -> None:
        b = self._budget
        while True:
            with b.cond:
                while not self._jobs and not b.cancelled:
                    b.cond.wait()
                if b.cancelled:
                    return
                feed = self._jobs.popleft()
            self._run(feed)

    def _run(self, feed: FileFeed) -> None:
        try:
            self._prepare(feed.path, feed)
            feed.put(End())
        except Cancelled:
            return
        except BaseException as e:  # forwarded: the main thread decides (file error or abort)
            try:
                feed.put(Failed(e))
            except Cancelled:
                return


def _settle_torch_pool() -> None:
    """Rebuild torch's intra-op thread pool on this thread before the workers may touch it.

    In a process forked after torch ran (a preloading server, `multiprocessing` with fork), torch
    marks its pool as leaked and rebuilds it on first use, and two threads doing that at once can
    see no pool at all ("Invalid thread pool!", seen in `tests/test_crash.py`). One call here,
    before any worker starts, does the rebuild alone. Nothing happens when torch is not loaded.
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(torch.get_num_threads())


def serialized(fn: Callable[..., Any] | None) -> Any:
    """`fn` behind a lock (OCR engines, captioners): workers call it one at a time."""
    if fn is None:
        return None
    lock = threading.Lock()

    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return fn(*args, **kwargs)

    return call
