"""Incremental, resumable indexing of files into the store.

For each file: hash its content; skip it when the file table holds the same hash; otherwise read
its chunks, embed them group by group, upsert the points (ids are UUID5 of hash and locator, so a
rerun overwrites rather than duplicates), flush the store, then record the file. A crash anywhere
before the record leaves the file unrecorded and the rerun does it again; a crash after it loses
nothing. When a changed file is re-indexed, the points of its old version are deleted only once the
new version is written, so a file that now fails keeps its old points.

With `ingest.workers` > 0 (the default) `run` goes through `mmrag.index.overlap`: worker threads
hash, decode and preprocess the next files while the encoders run on batches that span files,
with the same guarantees. `ingest.workers = 0` is the serial path below, one file at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.device import resolve_device
from mmrag.encoders.embedders import Embedders, embed_chunks
from mmrag.index.progress import progress_bar
from mmrag.index.record import FILE_ERRORS, FileRecorder, failure_reason, file_version, read_chunks
from mmrag.index.workers import resolve_workers
from mmrag.types import Chunk, FileError, IndexReport, IngestError, MMRAGError, NothingToIndex

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import MMRAGConfig
    from mmrag.index.folder import FileTable
    from mmrag.store.base import Store

# Chunks embedded together: bounds memory (a clip holds a few frames, a page one image).
GROUP = 32


class Indexer:
    """Indexes files into a store and records them in the file table."""

    def __init__(
        self,
        cfg: MMRAGConfig,
        store: Store,
        files: FileTable,
        embedders: Embedders,
        ocr: Callable[[Image.Image], str] | None = None,
        caption_fn: Callable[[list[Image.Image]], list[str]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.caption_fn = caption_fn
        self.store = store
        self.files = files
        self.emb = embedders
        self.ocr = ocr
        self._tick: Callable[[int], None] = lambda points: None
        self.recorder = FileRecorder(store, files, cfg.ingest.commit_seconds)

    def run(
        self,
        paths: Sequence[str | Path],
        progress: bool = True,
        strict: bool = False,
        on_file: Callable[[Path, int], None] | None = None,
    ) -> IndexReport:
        """Index `paths` (files or folders). Errors are collected per file unless `strict`."""
        t0 = time.perf_counter()
        found, report = self.discover(paths, strict)
        self.run_files(found, report, progress, strict, on_file)
        report.seconds = time.perf_counter() - t0
        return report

    def discover(
        self, paths: Sequence[str | Path], strict: bool = False, record_roots: bool = True
    ) -> tuple[list[Path], IndexReport]:
        """The files `paths` expand to, and a report holding the paths that could not be used.

        `record_roots` adds the folders and files given to the file table's roots (what a server may
        open); a watcher indexing a file inside a known root leaves them as they are.
        """
        return discover_files(self.cfg, self.files, paths, strict, record_roots)

    def run_files(
        self,
        found: Sequence[Path],
        report: IndexReport,
        progress: bool = True,
        strict: bool = False,
        on_file: Callable[[Path, int], None] | None = None,
    ) -> None:
        """Index files that `discover` found, adding the outcome to `report`."""
        workers = resolve_workers(self.cfg.ingest.workers, resolve_device(self.cfg.encoders.device))
        with progress_bar(progress, len(found), "indexing", status=_speech_status()) as bar:

            def advance(path: Path, n: int, points: int = 0) -> None:
                bar(n, path.name[:40] + (f"  {points} points" if points else ""))

            try:
                if workers:
                    from mmrag.index.overlap import OverlappedRun

                    # `embed_chunks` is read here, at call time, so a wrapper set on this module applies
                    OverlappedRun(
                        self.recorder,
                        self.emb,
                        self.cfg,
                        embed=embed_chunks,
                        report=report,
                        advance=advance,
                        strict=strict,
                        on_file=on_file,
                        workers=workers,
                        ocr=self.ocr,
                        caption_fn=self.caption_fn,
                    ).run(found)
                else:
                    self._run_serial(found, report, advance, strict, on_file)
            finally:
                # Files finished before an error or interrupt are recorded: a rerun skips them.
                self.recorder.commit(force=True)

    def _run_serial(
        self,
        found: Sequence[Path],
        report: IndexReport,
        advance: Callable[..., None],
        strict: bool,
        on_file: Callable[[Path, int], None] | None,
    ) -> None:
        """One file after the other (`ingest.workers = 0`)."""
        for path in found:
            advance(path, 0)
            self._tick = lambda points, path=path: advance(path, 0, points)  # type: ignore[misc]
            try:
                written = self.index_file(path)
            except NothingToIndex as e:
                report.ignored.append(FileError(str(path), str(e)))
                advance(path, 1)
                continue
            except FILE_ERRORS as e:
                if strict:
                    raise MMRAGError(f"{path}: {failure_reason(e)}") from e
                report.errors.append(FileError(str(path), failure_reason(e)))
                advance(path, 1)
                continue
            if written is None:
                report.files_skipped += 1
            else:
                report.files_indexed += 1
                report.points_written += written
            if on_file is not None:
                on_file(path, written or 0)
            advance(path, 1)

    def index_file(self, path: Path) -> int | None:
        """Index one file; returns the points written, or None when it was already up to date."""
        from mmrag.ingest import file_hash

        key = str(path)
        before = file_version(path)
        digest = file_hash(path)
        old = self.files.get(key)
        if old is not None and old.hash == digest:
            return None
        written_ids: list[str] = []
        try:
            for group in _groups(self._chunks(path), GROUP):
                points = embed_chunks(group, digest, self.emb, batch_size=self.cfg.encoders.batch_size)
                self.store.upsert(points)
                written_ids.extend(p.id for p in points)
                self._tick(len(written_ids))
            if file_version(path) != before:
                # a writer got in between hashing and reading: the points may not match the hash
                raise IngestError(
                    "file changed while it was being indexed; index it again once it is complete"
                )
        except BaseException:
            # Drop the partial new version; the old version (other ids) stays searchable.
            if written_ids:
                self.store.delete_ids(written_ids)
            raise
        if not written_ids:
            raise IngestError("no content found (nothing to index)")
        self.recorder.delete_stale(key, digest)
        self.recorder.record(key, digest, before, len(written_ids))
        return len(written_ids)

    def _chunks(self, path: Path) -> Iterator[Chunk]:
        return read_chunks(path, self.cfg.ingest, self.ocr, self.caption_fn)


def discover_files(
    cfg: MMRAGConfig, files: FileTable, paths: Sequence[str | Path], strict: bool, record_roots: bool = True
) -> tuple[list[Path], IndexReport]:
    """The files `paths` expand to (`find_files`), and the report a run starts from (`Indexer.discover`)."""
    from mmrag.ingest import find_files

    discovered = find_files(paths, cfg.ingest)
    found, errors = discovered.files, discovered.errors
    if strict and errors:
        raise MMRAGError(f"{errors[0].path}: {errors[0].reason}")
    if record_roots:
        files.add_roots(discovered.roots)
    report = IndexReport(files_seen=len(found) + len(errors), errors=list(errors))
    report.ignored.extend(discovered.skipped)
    return list(found), report


def _speech_status() -> Callable[[], str]:
    """`12.5 audio min transcribed`: audio transcribed since this call (videos and audio files)."""
    from mmrag.ingest.asr import transcribed_seconds

    start = transcribed_seconds()

    def status() -> str:
        done = transcribed_seconds() - start
        return f"{done / 60:.1f} audio min transcribed" if done > 0 else ""

    return status


def index_readers(
    cfg: MMRAGConfig,
) -> tuple[Callable[[Image.Image], str] | None, Callable[[list[Image.Image]], list[str]] | None]:
    """The OCR and the captioner the readers use, as `cfg` asks (`encoders.ocr`/`ingest.video_ocr`,
    `ingest.caption`); None for each one not asked for. The captioner loads the configured generator."""
    ocr = None
    if cfg.encoders.ocr or cfg.ingest.video_ocr:
        from mmrag.encoders.ocr import Ocr

        ocr = Ocr()
    caption_fn = None
    if cfg.ingest.caption:
        from mmrag.generate.loader import load_generator
        from mmrag.index.captions import vlm_caption_fn

        caption_fn = vlm_caption_fn(load_generator(cfg.generate))
    return ocr, caption_fn


def _groups(it: Iterator[Chunk], n: int) -> Iterator[list[Chunk]]:
    group: list[Chunk] = []
    for c in it:
        group.append(c)
        if len(group) >= n:
            yield group
            group = []
    if group:
        yield group
