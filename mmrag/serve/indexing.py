"""Indexing inside a running server, and `mmrag serve --watch`.

The pipeline has one worker thread (`mmrag.serve.backend`). An index run through the server is a
series of jobs on it: one to find the files, one per file, one to finish (search graphs, manifest,
the list of servable files). A search that arrives meanwhile waits for the current file only, and
sees whole files: a file's points and its file-table row are written within its own job.

`Watcher` follows the indexed roots with `watchfiles` and sends what changed through the same path:
new and changed files are indexed (unchanged content is skipped by its hash), deleted ones dropped.
Each batch is reported on stderr as `mmrag index` reports a run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.serve.backend import ServerBusy
from mmrag.types import FileError, IndexReport

if TYPE_CHECKING:
    from mmrag.serve.backend import Backend

log = logging.getLogger("mmrag.serve")
Progress = Callable[[str, dict[str, Any]], None]
"""Called with (`start` | `file`, details) as an index run goes."""


class ServerIndexer:
    """Index runs of one server, one at a time, file by file on the pipeline's worker thread."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self._one_run = threading.Lock()
        self.roots_changed = threading.Event()
        """Set when a run recorded new roots (a watcher then watches them too)."""

    def _job(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` on the worker thread and wait; a full queue is waited out, not refused."""
        while True:
            try:
                return self.b.call(fn, *args).result()
            except ServerBusy:
                time.sleep(0.2)

    def roots(self) -> list[str]:
        """The file table's roots (read on the worker thread, which owns the table)."""
        roots: list[str] = self._job(lambda: self.b.pipe.files.roots())
        return roots

    def run(
        self,
        paths: Sequence[str],
        *,
        strict: bool = False,
        follow_symlinks: bool | None = None,
        record_roots: bool = True,
        removed: Sequence[str] = (),
        on_progress: Progress | None = None,
    ) -> IndexReport:
        """Index `paths` (files or folders) and drop `removed`; returns once every file is searchable."""
        with self._one_run:
            t0 = time.perf_counter()
            before = set(self.roots())
            found, report = self._job(self._discover, list(paths), strict, follow_symlinks, record_roots)
            if on_progress:
                on_progress("start", {"total": len(found)})
            for i, path in enumerate(found, 1):
                self._job(self._index_one, path, report, strict)
                if on_progress:
                    on_progress("file", {"path": str(path), "done": i, "total": len(found)})
            dropped = self._job(self.b.pipe.updates.remove, list(removed)) if removed else []
            report.seconds = time.perf_counter() - t0
            self._job(self._finish, bool(report.points_written or dropped))
            if set(self.roots()) != before:
                self.roots_changed.set()
            report.ignored.extend(FileError(p, "deleted: dropped from the index") for p in dropped)
            return report

    def _discover(
        self, paths: list[str], strict: bool, follow_symlinks: bool | None, record_roots: bool
    ) -> tuple[list[Path], IndexReport]:
        ingest = self.b.pipe.config.ingest
        keep = ingest.follow_symlinks
        if follow_symlinks is not None:
            ingest.follow_symlinks = follow_symlinks
        try:
            return self.b.pipe.updates.discover(paths, strict=strict, record_roots=record_roots)
        finally:
            ingest.follow_symlinks = keep

    def _index_one(self, path: Path, report: IndexReport, strict: bool) -> None:
        self.b.pipe.updates.index_files([path], report, False, strict)
        self.b.refresh_files()  # its hits name it by its public path, its thumbnails are servable

    def _finish(self, changed: bool) -> None:
        self.b.pipe.finish_index(changed=changed)
        self.b.refresh_files()


def _watchable(path: str, index_dir: str) -> bool:
    """Not inside the index folder, no hidden part (`.git`, editors' swap files)."""
    from mmrag.ingest.discover import inside

    if inside(os.path.realpath(path), index_dir):
        return False
    return not any(part.startswith(".") for part in Path(path).parts)


class Watcher:
    """`mmrag serve --watch`: index what changes under the indexed roots, on a daemon thread.

    Args:
        indexer: The server's indexer.
        roots: Reads the roots to watch (the file table's).
        index_dir: The index folder (never watched, even inside a root).
        report: Called with each batch's report (the CLI prints it as `mmrag index` does).
        debounce_ms: Changes are gathered this long before a batch starts.
    """

    def __init__(
        self,
        indexer: ServerIndexer,
        roots: Callable[[], list[str]],
        index_dir: Path,
        report: Callable[[IndexReport], None],
        debounce_ms: int = 400,
    ) -> None:
        import watchfiles  # noqa: F401 - fail at start, with the extra to install, not on the thread

        self.indexer, self.roots, self.report = indexer, roots, report
        self.index_dir = os.path.realpath(index_dir)
        self.debounce_ms = debounce_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mmrag-watch", daemon=True)
        self.ready = threading.Event()
        """Set once the watcher is watching (tests wait for it before changing files)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.indexer.roots_changed.set()
        self._thread.join(10)

    def _loop(self) -> None:
        from watchfiles import watch

        while not self._stop.is_set():
            self.indexer.roots_changed.clear()
            roots = [r for r in self.roots() if os.path.exists(r)]
            if not roots:
                self.ready.set()
                self.indexer.roots_changed.wait(1.0)
                continue
            stop = _Either(self._stop, self.indexer.roots_changed)
            changes = watch(
                *roots,
                stop_event=stop,
                debounce=self.debounce_ms,
                step=50,
                rust_timeout=500,
                yield_on_timeout=True,
                ignore_permission_denied=True,
            )
            for batch in changes:
                self.ready.set()
                if batch:
                    self._apply(batch)

    def _apply(self, batch: Iterable[tuple[Any, str]]) -> None:
        changed = sorted({p for c, p in batch if _watchable(p, self.index_dir)})
        deleted = [p for p in changed if not os.path.exists(p)]
        present = [p for p in changed if os.path.exists(p) and _indexable(p)]
        if not present and not deleted:
            return
        try:
            report = self.indexer.run(present, record_roots=False, removed=deleted)
        except Exception:  # one bad batch never ends the watch
            log.exception("watch: indexing %d changed files failed", len(present))
            return
        self.report(report)


def _indexable(path: str) -> bool:
    """A folder (walked), or a file of a kind `mmrag index` reads (other files are left out silently,
    as a folder walk leaves them)."""
    from mmrag.ingest.discover import SUBTITLE_EXTS, kind_of

    p = Path(path)
    if p.is_dir():
        return True
    return p.is_file() and p.suffix.lower() not in SUBTITLE_EXTS and kind_of(p) is not None


class _Either:
    """Set when either event is (what `watchfiles.watch` takes as its `stop_event`)."""

    def __init__(self, a: threading.Event, b: threading.Event) -> None:
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or self.b.is_set()


__all__ = ["ServerIndexer", "Watcher"]
