"""The vector store: one Qdrant collection behind the `Store` interface, embedded or on a server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.store.base import (
    BM25,
    INDEXED_FIELDS,
    PointData,
    Prefetch,
    ScoredPoint,
    SearchFilter,
    SearchOptions,
    SparseVec,
    Store,
    StoreSchema,
    point_id,
)

if TYPE_CHECKING:
    from mmrag.store.server import ServerOptions

__all__ = [
    "BM25",
    "INDEXED_FIELDS",
    "PointData",
    "Prefetch",
    "ScoredPoint",
    "SearchFilter",
    "SearchOptions",
    "SparseVec",
    "Store",
    "StoreSchema",
    "open_store",
    "point_id",
]


def open_store(
    index_dir: Path,
    schema: StoreSchema,
    url: str | None = None,
    collection: str = "mmrag",
    api_key: str | None = None,
    options: SearchOptions | ServerOptions | None = None,
) -> Store:
    """The store of an index: embedded in `index_dir/store` by default, else on the Qdrant at `url`.

    Args:
        index_dir: The index folder.
        schema: Dense spaces and HNSW settings of the collection.
        url: A Qdrant server URL, `:memory:` or `local:/folder` (qdrant-client local mode);
            None keeps the points in an embedded qdrant-edge shard inside `index_dir`.
        collection: Collection name on the server.
        api_key: Qdrant API key for the server.
        options: Search options (HNSW beam, int8 quantization) for both backends; a
            `ServerOptions` adds the server-only settings (shards, replicas, timeouts).

    Returns:
        An open `Store`; close it (or use it as a context manager) to flush it.
    """
    if url is None:
        from mmrag.store.edge import EdgeStore

        return EdgeStore(Path(index_dir) / "store", schema, options)
    from mmrag.store.server import ClientStore, ServerOptions

    if options is not None and not isinstance(options, ServerOptions):
        options = ServerOptions(**{k: getattr(options, k) for k in SearchOptions.__dataclass_fields__})
    return ClientStore(url, schema, collection=collection, api_key=api_key, options=options)
