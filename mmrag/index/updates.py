"""Indexing in steps: find the files, index them one call at a time, drop the deleted ones.

`Pipeline.index` runs the steps back to back. A process that answers searches while it indexes
(`mmrag serve`, its `--watch`) runs them as separate jobs on the thread that owns the pipeline: one
file per job, so a search queued meanwhile runs between two files and sees only whole files (a file
is recorded, and its old version's points deleted, within its own job).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.types import IndexReport

if TYPE_CHECKING:
    from mmrag.config import MMRAGConfig
    from mmrag.encoders.embedders import Embedders
    from mmrag.index.indexer import Indexer
    from mmrag.index.opening import IndexFolder


class IndexUpdates:
    """The steps of indexing over one open index folder.

    Args:
        config: The pipeline's config (ingest settings, encoders).
        folder: The open index folder (store, file table).
        embedders: The pipeline's encoders.
    """

    def __init__(self, config: MMRAGConfig, folder: IndexFolder, embedders: Embedders) -> None:
        self.config, self.folder, self.embedders = config, folder, embedders
        self._indexer: Indexer | None = None

    def indexer(self) -> Indexer:
        """The `Indexer` over the folder's current store (made again after the store was reopened)."""
        store = self.folder.store
        if self._indexer is None or self._indexer.store is not store:
            from mmrag.index.indexer import Indexer, index_readers

            ocr, caption_fn = index_readers(self.config)
            self._indexer = Indexer(
                self.config, store, self.folder.files, self.embedders, ocr=ocr, caption_fn=caption_fn
            )
        return self._indexer

    def discover(
        self, paths: Sequence[str | Path], strict: bool = False, record_roots: bool = True
    ) -> tuple[list[Path], IndexReport]:
        """The files `paths` expand to and the report a run starts from (`Indexer.discover`).

        Writes the manifest first, so that an index interrupted before its first point still opens.
        """
        indexer = self.indexer()
        self.folder.save()
        return indexer.discover(paths, strict, record_roots)

    def finish(self, changed: bool = True) -> bool:
        """After indexing: build the search graphs when points `changed`, prepare the torch-free query
        encoder, draw the hubness banks when due, and write the manifest. Returns `changed`."""
        store = self.folder.store
        if changed:
            store.optimize()  # the embedded engine builds HNSW only when asked; until then, brute force
        self.embedders.prepare_query_runtime()  # the next search embeds its query without torch
        bank = self.config.ingest.hubness_bank
        if bank:
            from mmrag.retrieve.banks import build_index_banks
            from mmrag.retrieve.hubness import HubnessBanks

            if HubnessBanks.need_building(self.folder.index_dir, bank, store.count()):
                build_index_banks(store, self.embedders, bank, self.folder.index_dir)
        self.folder.save()
        return changed

    def index_files(
        self,
        files: Sequence[Path],
        report: IndexReport,
        progress: bool = False,
        strict: bool = False,
        on_file: Callable[[Path, int], None] | None = None,
    ) -> None:
        """Index `files` (from `discover`) into the store, adding the outcome to `report`."""
        self.indexer().run_files(files, report, progress, strict, on_file)

    def remove(self, paths: Sequence[str | Path]) -> list[str]:
        """Drop indexed files from the store and the file table: each path that is an indexed file,
        and every indexed file below a path that was a folder. Returns the paths dropped."""
        files = self.folder.files
        wanted = [os.path.abspath(str(p)) for p in paths]
        gone = [
            r.path
            for r in files.all()
            if any(r.path == w or r.path.startswith(w.rstrip(os.sep) + os.sep) for w in wanted)
        ]
        store = self.folder.store
        for path in gone:
            store.delete_by_path(path)
            files.delete(path)
        if gone:
            store.flush()
        return gone


__all__ = ["IndexUpdates"]
