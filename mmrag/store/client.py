"""`ClientStore`: a collection on a Qdrant server or cluster through qdrant-client.

`url=":memory:"` runs qdrant-client's pure-Python local mode in memory (tests), and
`url="local:/some/dir"` its local mode persisted in a folder; both are for small data only
(brute-force search in Python, no payload indexes). Anything else is a server URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from mmrag.store._common import (
    BATCH,
    batches,
    check_prefetch,
    check_sparse,
    conditions,
    dense_list,
    last_per_id,
)
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
)
from mmrag.types import IndexLockedError, IndexMismatchError, MMRAGError

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models

LOCAL_PREFIX = "local:"


def _import_client() -> tuple[Any, Any]:
    try:
        from qdrant_client import QdrantClient, models
    except ImportError as e:  # pragma: no cover - a core dependency
        raise MMRAGError("a Qdrant server store needs qdrant-client: pip install qdrant-client") from e
    return QdrantClient, models


def _connect(url: str, api_key: str | None) -> tuple[QdrantClient, bool]:
    """The client for `url`, and whether it is qdrant-client's local (in-process) mode."""
    client_cls, _ = _import_client()
    if url == ":memory:":
        return client_cls(location=":memory:"), True
    if url.startswith(LOCAL_PREFIX):
        folder = url[len(LOCAL_PREFIX) :]
        try:
            return client_cls(path=folder), True
        except RuntimeError as e:  # local mode locks its folder with a file lock
            raise IndexLockedError(f"{folder}: the store is open in another process: {e}") from e
    # The key goes to the client only: never into a message, a repr or a log line.
    return client_cls(url=url, api_key=api_key), False


def _schema_differences(info: Any, schema: StoreSchema) -> list[str]:
    """What differs between an existing collection's vectors and `schema` (empty when compatible)."""
    _, models = _import_client()
    params = info.config.params
    vectors = params.vectors if isinstance(params.vectors, dict) else {}
    if params.vectors is not None and not isinstance(params.vectors, dict):
        return ["the collection has one unnamed dense vector; mmrag needs named vectors"]
    diffs = []
    for name in sorted(set(vectors) | set(schema.dense)):
        have, want = vectors.get(name), schema.dense.get(name)
        if have is None:
            diffs.append(f"dense vector {name!r} (dim {want}) is missing from the collection")
        elif want is None:
            diffs.append(f"the collection has dense vector {name!r} (dim {have.size}) that the schema lacks")
        elif have.size != want:
            diffs.append(f"dense vector {name!r} has dim {have.size} in the collection, {want} in the schema")
        elif have.distance != models.Distance.COSINE:
            diffs.append(f"dense vector {name!r} uses {have.distance} distance, not cosine")
    sparse = (params.sparse_vectors or {}).get(BM25)
    if sparse is None:
        diffs.append(f"sparse vector {BM25!r} is missing from the collection")
    elif sparse.modifier != models.Modifier.IDF:
        diffs.append(f"sparse vector {BM25!r} has modifier {sparse.modifier}, not IDF")
    return diffs


def _vectors_out(vector: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in (vector or {}).items():
        out[name] = SparseVec(list(v.indices), list(v.values)) if hasattr(v, "indices") else list(v)
    return out


class ClientStore(Store):
    """One collection on a Qdrant server or cluster (or in qdrant-client's local mode).

    Args:
        url: Server URL (`http://host:6333`), `:memory:`, or `local:/folder`.
        schema: Dense spaces and HNSW settings.
        collection: Collection name; created with `schema` when missing.
        api_key: Qdrant API key (never logged).
        shard_number: Shards of a new collection (clusters); the server default when None.
        replication_factor: Replicas of each shard of a new collection; the server default when None.

    Raises:
        IndexMismatchError: The collection exists with other vector names, dims or modifiers.
        MMRAGError: The server cannot be reached.
    """

    def __init__(
        self,
        url: str,
        schema: StoreSchema,
        collection: str = "mmrag",
        api_key: str | None = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
    ) -> None:
        _, self._models = _import_client()
        self.url = url
        self.schema = schema
        self.collection = collection
        self._client, self._local = _connect(url, api_key)
        try:
            exists = self._client.collection_exists(collection)
            if exists:
                diffs = _schema_differences(self._client.get_collection(collection), schema)
                if diffs:
                    raise IndexMismatchError(f"collection {collection!r} at {url}: " + "; ".join(diffs))
            else:
                self._create(shard_number, replication_factor)
        except MMRAGError:
            self._client.close()
            raise
        except Exception as e:  # connection refused, timeouts, auth: the client raises many types
            self._client.close()
            why = f"{type(e).__name__}: {e}"
            raise MMRAGError(f"cannot open collection {collection!r} at {url}: {why}") from e
        self._closed = False

    def _create(self, shard_number: int | None, replication_factor: int | None) -> None:
        m, s = self._models, self.schema
        self._client.create_collection(
            self.collection,
            vectors_config={
                name: m.VectorParams(size=dim, distance=m.Distance.COSINE, on_disk=s.on_disk or None)
                for name, dim in s.dense.items()
            },
            sparse_vectors_config={BM25: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            hnsw_config=m.HnswConfigDiff(m=s.hnsw_m, ef_construct=s.hnsw_ef_construct),
            shard_number=shard_number,
            replication_factor=replication_factor,
        )
        if self._local:
            return  # local mode ignores payload indexes (and warns when asked for one)
        kinds = {
            "keyword": m.PayloadSchemaType.KEYWORD,
            "integer": m.PayloadSchemaType.INTEGER,
            "float": m.PayloadSchemaType.FLOAT,
        }
        for name, kind in INDEXED_FIELDS.items():
            self._client.create_payload_index(self.collection, name, field_schema=kinds[kind], wait=True)

    def __repr__(self) -> str:
        return f"ClientStore({self.url!r}, collection={self.collection!r}, dense={self.schema.dense})"

    @property
    def client(self) -> QdrantClient:
        """The underlying `QdrantClient` (for snapshots, aliases and other extras)."""
        if self._closed:
            raise MMRAGError(f"{self!r} is closed")
        return self._client

    def _filter(self, flt: SearchFilter | None) -> models.Filter | None:
        m = self._models
        must: list[Any] = []
        for c in conditions(flt):
            if c.any_of is not None:
                must.append(m.FieldCondition(key=c.key, match=m.MatchAny(any=list(c.any_of))))
            else:
                must.append(m.FieldCondition(key=c.key, range=m.Range(gte=c.gte, lte=c.lte)))
        return m.Filter(must=must) if must else None

    def _point(self, p: PointData) -> models.PointStruct:
        m = self._models
        what = f"point {p.id}"
        vector: dict[str, Any] = {name: dense_list(self.schema, name, v, what) for name, v in p.dense.items()}
        if p.sparse is not None:
            check_sparse(p.sparse.indices, p.sparse.values, what)
            vector[BM25] = m.SparseVector(indices=list(p.sparse.indices), values=list(p.sparse.values))
        return m.PointStruct(id=p.id, vector=vector, payload=p.payload)

    def upsert(self, points: Sequence[PointData]) -> None:
        for batch in batches(last_per_id(points)):
            self.client.upsert(self.collection, points=[self._point(p) for p in batch], wait=True)

    def delete_by_path(self, path: str) -> None:
        m = self._models
        flt = m.Filter(must=[m.FieldCondition(key="path", match=m.MatchValue(value=path))])
        self.client.delete(self.collection, points_selector=m.FilterSelector(filter=flt), wait=True)

    def delete_ids(self, ids: Sequence[str]) -> None:
        if ids:
            selector = self._models.PointIdsList(points=list(ids))
            self.client.delete(self.collection, points_selector=selector, wait=True)

    def _query_vector(self, p: Prefetch) -> Any:
        check_prefetch(self.schema, p)
        if p.sparse is not None:
            check_sparse(p.sparse.indices, p.sparse.values, f"prefetch using {p.using!r}")
            return self._models.SparseVector(indices=list(p.sparse.indices), values=list(p.sparse.values))
        assert p.dense is not None
        return dense_list(self.schema, p.using, p.dense, "query")

    def query(
        self,
        prefetches: Sequence[Prefetch],
        limit: int,
        flt: SearchFilter | None = None,
        fusion: Literal["rrf", "dbsf"] = "rrf",
    ) -> list[ScoredPoint]:
        m = self._models
        if not prefetches:
            raise MMRAGError("query needs at least one prefetch")
        qflt = self._filter(flt)
        if len(prefetches) == 1:
            p = prefetches[0]
            res = self.client.query_points(
                self.collection,
                query=self._query_vector(p),
                using=p.using,
                query_filter=qflt,
                limit=limit,
                with_payload=True,
            )
        else:
            if fusion not in ("rrf", "dbsf"):
                raise MMRAGError(f"unknown fusion {fusion!r} (use 'rrf' or 'dbsf')")
            stages = [
                m.Prefetch(query=self._query_vector(p), using=p.using, filter=qflt, limit=p.limit)
                for p in prefetches
            ]
            # Plain `FusionQuery` works on every server since 1.10; its RRF constant is the server
            # default k=2 (RRF_K), which the embedded store spells out, so both fuse alike.
            fuse = m.FusionQuery(fusion=m.Fusion.RRF if fusion == "rrf" else m.Fusion.DBSF)
            res = self.client.query_points(
                self.collection, prefetch=stages, query=fuse, limit=limit, with_payload=True
            )
        return [ScoredPoint(str(r.id), float(r.score), dict(r.payload or {})) for r in res.points]

    def count(self, flt: SearchFilter | None = None) -> int:
        return int(self.client.count(self.collection, count_filter=self._filter(flt), exact=True).count)

    def scroll(self, flt: SearchFilter | None = None, with_vectors: bool = False) -> Iterator[dict[str, Any]]:
        qflt = self._filter(flt)
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=qflt,
                limit=BATCH,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
            for r in records:
                item: dict[str, Any] = {"id": str(r.id), "payload": dict(r.payload or {})}
                if with_vectors:
                    item["vectors"] = _vectors_out(r.vector)
                yield item
            if offset is None:
                return

    def flush(self) -> None:
        # Upserts wait for the server to apply them (it keeps its own WAL); local mode persists
        # every write as it happens. Nothing is buffered on this side.
        _ = self.client

    def close(self) -> None:
        if self._closed:
            return
        self._client.close()
        self._closed = True
