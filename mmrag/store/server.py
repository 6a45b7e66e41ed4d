"""`ClientStore`: a collection on a Qdrant server or cluster through qdrant-client.

`url=":memory:"` runs qdrant-client's pure-Python local mode in memory (tests), and
`url="local:/some/dir"` its local mode persisted in a folder; both are for small data only
(brute-force search in Python, no payload indexes, no shards). Anything else is a server URL.

What only a server uses (shards, replicas, on-disk payload, int8 quantization, request timeout)
comes in a `ServerOptions`; local mode ignores it. Connecting and laying out the collection are in
`mmrag.store.server_setup`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from mmrag.store._common import (
    BATCH,
    RRF_K,
    batches,
    check_prefetch,
    check_sparse,
    conditions,
    dense_list,
    in_order,
    last_per_id,
    point_ids,
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
from mmrag.store.server_setup import (
    ServerOptions,
    collection_config,
    connect,
    explain,
    import_client,
    schema_differences,
)
from mmrag.types import IndexMismatchError, MMRAGError

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models


def _vectors_out(vector: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in (vector or {}).items():
        out[name] = SparseVec(list(v.indices), list(v.values)) if hasattr(v, "indices") else list(v)
    return out


def _record(r: Any, with_vectors: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"id": str(r.id), "payload": dict(r.payload or {})}
    if with_vectors:
        item["vectors"] = _vectors_out(r.vector)
    return item


class ClientStore(Store):
    """One collection on a Qdrant server or cluster (or in qdrant-client's local mode).

    Args:
        url: Server URL (`http://host:6333`), `:memory:`, or `local:/folder`.
        schema: Dense spaces, HNSW settings and on-disk vectors.
        collection: Collection name; created with `schema` and `options` when missing.
        api_key: Qdrant API key (never logged).
        options: Shards, replicas, quantization, timeout (server only); defaults when None.
        create: Create the collection when missing; False raises instead (to read an existing one).

    Raises:
        IndexMismatchError: The collection exists with other vector names, dims or modifiers.
        MMRAGError: The server cannot be reached, does not answer in time, or refuses the API key.

    Example:
        >>> opts = ServerOptions(shard_number=6, replication_factor=2, quantization="int8")
        >>> schema = StoreSchema({"image": 512, "text": 384})
        >>> store = ClientStore("http://qdrant:6333", schema, options=opts)  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        schema: StoreSchema,
        collection: str = "mmrag",
        api_key: str | None = None,
        options: ServerOptions | None = None,
        create: bool = True,
    ) -> None:
        _, self._models = import_client()
        self.url = url
        self.schema = schema
        self.collection = collection
        self.options = options or ServerOptions()
        self._api_key_given = bool(api_key)
        self._client, self._local = connect(url, api_key, self.options.timeout)
        self._closed = False
        try:
            with self._server_errors(f"cannot open collection {collection!r}"):
                if self._client.collection_exists(collection):
                    diffs = schema_differences(self._client.get_collection(collection), schema)
                    if diffs:
                        raise IndexMismatchError(f"collection {collection!r} at {url}: " + "; ".join(diffs))
                elif create:
                    self._create()
                else:
                    raise MMRAGError(f"there is no collection {collection!r} at {url}")
        except MMRAGError:
            self.close()
            raise

    @contextmanager
    def _server_errors(self, what: str) -> Iterator[None]:
        """Turn the client's many exception types (httpx, HTTP status, gRPC) into one MMRAGError."""
        try:
            yield
        except MMRAGError:
            raise
        except Exception as e:
            why = explain(e, self.url, self.options.timeout, self._api_key_given)
            raise MMRAGError(f"{what}: {why}") from e

    def _create(self) -> None:
        m = self._models
        self._client.create_collection(self.collection, **collection_config(self.schema, self.options))
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

    def _search_params(self) -> models.SearchParams | None:
        """HNSW beam and int8 rescoring for a server (local mode searches exactly and warns on them)."""
        m, o = self._models, self.options
        if self._local or (o.quantization == "none" and o.hnsw_ef is None):
            return None
        quant = None
        if o.quantization == "int8":
            # Rank by the int8 copies, then rescore `oversampling` x limit candidates with the originals.
            quant = m.QuantizationSearchParams(rescore=True, oversampling=o.oversampling)
        return m.SearchParams(hnsw_ef=o.hnsw_ef, quantization=quant)

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
            structs = [self._point(p) for p in batch]
            with self._server_errors(f"upsert into {self.collection!r}"):
                self.client.upsert(self.collection, points=structs, wait=True)

    def delete_by_path(self, path: str) -> None:
        m = self._models
        flt = m.Filter(must=[m.FieldCondition(key="path", match=m.MatchValue(value=path))])
        with self._server_errors(f"delete from {self.collection!r}"):
            self.client.delete(self.collection, points_selector=m.FilterSelector(filter=flt), wait=True)

    def delete_ids(self, ids: Sequence[str]) -> None:
        if ids:
            selector = self._models.PointIdsList(points=list(ids))
            with self._server_errors(f"delete from {self.collection!r}"):
                self.client.delete(self.collection, points_selector=selector, wait=True)

    def _query_vector(self, p: Prefetch) -> Any:
        check_prefetch(self.schema, p)
        if p.sparse is not None:
            check_sparse(p.sparse.indices, p.sparse.values, f"prefetch using {p.using!r}")
            return self._models.SparseVector(indices=list(p.sparse.indices), values=list(p.sparse.values))
        assert p.dense is not None
        return dense_list(self.schema, p.using, p.dense, "query")

    def _stage(self, p: Prefetch, qflt: Any, params: Any) -> models.Prefetch:
        """One prefetch stage (with its own first stage, when it reranks one)."""
        return self._models.Prefetch(
            query=self._query_vector(p),
            using=p.using,
            filter=qflt,
            limit=p.limit,
            params=params if p.sparse is None else None,
            prefetch=[self._stage(p.first, qflt, params)] if p.first is not None else None,
        )

    def query(
        self,
        prefetches: Sequence[Prefetch],
        limit: int,
        flt: SearchFilter | None = None,
        fusion: Literal["rrf", "dbsf"] = "rrf",
        rrf_k: int = RRF_K,
    ) -> list[ScoredPoint]:
        m = self._models
        if not prefetches:
            raise MMRAGError("query needs at least one prefetch")
        qflt, params = self._filter(flt), self._search_params()
        if len(prefetches) == 1:
            p = prefetches[0]
            kwargs: dict[str, Any] = {"query": self._query_vector(p), "using": p.using, "query_filter": qflt}
            if params is not None and p.sparse is None:
                kwargs["search_params"] = params
            if p.first is not None:
                kwargs["prefetch"] = [self._stage(p.first, qflt, params)]
        else:
            if fusion not in ("rrf", "dbsf"):
                raise MMRAGError(f"unknown fusion {fusion!r} (use 'rrf' or 'dbsf')")
            stages = [self._stage(p, qflt, params) for p in prefetches]
            fuse: Any
            if fusion == "rrf" and rrf_k != RRF_K:
                fuse = m.RrfQuery(rrf=m.Rrf(k=rrf_k))  # a parametrised RRF needs server 1.16+
            else:
                # Plain `FusionQuery` works on every server since 1.10; its RRF constant is the
                # server default k=2 (RRF_K), which the embedded store spells out: both fuse alike.
                fuse = m.FusionQuery(fusion=m.Fusion.RRF if fusion == "rrf" else m.Fusion.DBSF)
            kwargs = {"prefetch": stages, "query": fuse}
        with self._server_errors(f"query {self.collection!r}"):
            res = self.client.query_points(self.collection, limit=limit, with_payload=True, **kwargs)
        return [ScoredPoint(str(r.id), float(r.score), dict(r.payload or {})) for r in res.points]

    def count(self, flt: SearchFilter | None = None) -> int:
        with self._server_errors(f"count {self.collection!r}"):
            return int(self.client.count(self.collection, count_filter=self._filter(flt), exact=True).count)

    def scroll_page(
        self,
        offset: str | None = None,
        limit: int = BATCH,
        flt: SearchFilter | None = None,
        with_vectors: bool = True,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of points in id order from `offset`, and the offset of the next page (None: done).

        The offset is a point id, so a copy can record it and resume where it stopped.
        """
        with self._server_errors(f"scroll {self.collection!r}"):
            records, nxt = self.client.scroll(
                self.collection,
                scroll_filter=self._filter(flt),
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
        return [_record(r, with_vectors) for r in records], None if nxt is None else str(nxt)

    def scroll(self, flt: SearchFilter | None = None, with_vectors: bool = False) -> Iterator[dict[str, Any]]:
        offset: str | None = None
        while True:
            rows, offset = self.scroll_page(offset, BATCH, flt, with_vectors)
            yield from rows
            if offset is None:
                return

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[dict[str, Any]]:
        wanted = point_ids(ids)
        if not wanted:
            return []
        with self._server_errors(f"get points from {self.collection!r}"):
            records = self.client.retrieve(
                self.collection, wanted, with_payload=True, with_vectors=with_vectors
            )
        return in_order(wanted, (_record(r, with_vectors) for r in records))

    def flush(self) -> None:
        # Upserts wait for the server to apply them (it keeps its own WAL); local mode persists
        # every write as it happens. Nothing is buffered on this side.
        _ = self.client

    def close(self) -> None:
        if self._closed:
            return
        self._client.close()
        self._closed = True
