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
    SparseVec,
    Store,
    StoreSchema,
    point_id,
)

if TYPE_CHECKING:
    from mmrag.store.client import ServerOptions

__all__ = [
    "BM25",
    "INDEXED_FIELDS",
    "PointData",
    "Prefetch",
    "ScoredPoint",
    "SearchFilter",
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
    options: ServerOptions | None = None,
) -> Store:
    """The store of an index: embedded in `index_dir/store` by default, else on the Qdrant at `url`.

    Args:
        index_dir: The index folder.
        schema: Dense spaces and HNSW settings of the collection.
        url: A Qdrant server URL, `:memory:` or `local:/folder` (qdrant-client local mode);
            None keeps the points in an embedded qdrant-edge shard inside `index_dir`.
        collection: Collection name on the server.
        api_key: Qdrant API key for the server.
        options: Server-only settings (shards, replicas, int8 quantization, timeouts).

    Returns:
        An open `Store`; close it (or use it as a context manager) to flush it.
    """
    if url is None:
        from mmrag.store.edge import EdgeStore

        return EdgeStore(Path(index_dir) / "store", schema)
    from mmrag.store.client import ClientStore

    return ClientStore(url, schema, collection=collection, api_key=api_key, options=options)
