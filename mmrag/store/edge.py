"""`EdgeStore`: the embedded default, a qdrant-edge-py shard kept in the index folder.

What qdrant-edge-py 0.9 does, as measured (see `bench/store.py` and `tests/test_store.py`):

- Durability: the shard writes every update to a write-ahead log before `update()` returns, so
  points survive a process killed without `flush()` or `close()` (reopening replays the WAL).
  `flush()` persists the segments and the WAL position they cover, so a reopen replays less; it
  does not shrink the WAL files. We flush on close.
- Indexing: nothing happens in the background. Upserts land in an appendable plain segment that is
  searched by brute force, so search before `optimize()` is exact (recall 1.0) but its cost grows
  linearly. `optimize()` blocks while it builds the HNSW graph for segments over the indexing
  threshold (about 10 MB of vectors, i.e. ~5k 512-d points) and returns False when there was
  nothing to do; after it, search is approximate (`SearchParams(exact=True)` still brute-forces).
  `Store.optimize()` exposes it; call it once a batch of indexing is done.
- Locking: a second open of the same folder (same or another process) fails on the WAL lock; we
  turn that into `IndexLockedError`.
- Filters work on payload fields with or without a payload index; indexes only make them fast.
- Search options (`SearchOptions`): `hnsw_ef` and int8 scalar quantization with rescoring apply
  to every dense search; the int8 copies are built by `optimize()` (also for a shard created
  without them and reopened with them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
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
    INT8_QUANTILE,
    PointData,
    Prefetch,
    ScoredPoint,
    SearchFilter,
    SearchOptions,
    SparseVec,
    Store,
    StoreSchema,
)
from mmrag.types import IndexLockedError, IndexMismatchError, MMRAGError

if TYPE_CHECKING:
    import qdrant_edge

# A segment smaller than this (KB of vectors) is searched by brute force even when it has HNSW.
FULL_SCAN_THRESHOLD_KB = 10_000


def _import_edge() -> Any:
    try:
        import qdrant_edge
    except ImportError as e:  # pragma: no cover - a core dependency
        raise MMRAGError("the embedded store needs qdrant-edge-py: pip install 'qdrant-edge-py>=0.9'") from e
    return qdrant_edge


def _edge_config(qe: Any, schema: StoreSchema, options: SearchOptions) -> qdrant_edge.EdgeConfig:
    memory = qe.Memory.Cold if schema.on_disk else None
    quantization = None
    if options.quantization == "int8":
        quantization = qe.ScalarQuantizationConfig(
            type=qe.ScalarType.Int8,
            quantile=INT8_QUANTILE,
            memory=qe.Memory.Cached if options.quantization_always_ram else qe.Memory.Cold,
        )
    vectors = {
        name: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine, memory=memory)
        for name, dim in schema.dense.items()
    }
    # Late-interaction spaces rerank an earlier stage's candidates: MaxSim, and no HNSW graph (m=0),
    # which for a page of ~1,000 patch vectors would cost far more than it saves.
    no_graph = qe.HnswIndexConfig(m=0, ef_construct=schema.hnsw_ef_construct, full_scan_threshold=0)
    maxsim = qe.MultiVectorConfig(comparator=qe.MultiVectorComparator.MaxSim)
    for name, dim in schema.multi.items():
        vectors[name] = qe.EdgeVectorParams(
            size=dim,
            distance=qe.Distance.Cosine,
            memory=memory,
            multivector_config=maxsim,
            hnsw_config=no_graph,
        )
    return qe.EdgeConfig(
        vectors=vectors,
        # IDF comes from the shard's own document frequencies; the encoder gives TF weights.
        sparse_vectors={BM25: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=qe.HnswIndexConfig(
            m=schema.hnsw_m, ef_construct=schema.hnsw_ef_construct, full_scan_threshold=FULL_SCAN_THRESHOLD_KB
        ),
        quantization_config=quantization,
    )


def _search_params(qe: Any, options: SearchOptions) -> qdrant_edge.SearchParams | None:
    """HNSW beam and int8 rescoring for dense searches (None: the engine's defaults)."""
    if options.quantization == "none" and options.hnsw_ef is None:
        return None
    quant = None
    if options.quantization == "int8":
        # Rank by the int8 copies, then rescore `oversampling` x limit candidates with the originals.
        quant = qe.QuantizationSearchParams(rescore=True, oversampling=options.oversampling)
    return qe.SearchParams(hnsw_ef=options.hnsw_ef, quantization=quant)


def _edge_filter(qe: Any, flt: SearchFilter | None) -> qdrant_edge.Filter | None:
    must = []
    for c in conditions(flt):
        if c.any_of is not None:
            must.append(qe.FieldCondition(c.key, match=qe.MatchAny(list(c.any_of))))
        else:
            must.append(qe.FieldCondition(c.key, range=qe.RangeFloat(gte=c.gte, lte=c.lte)))
    return qe.Filter(must=must) if must else None


def _vectors_out(qe: Any, vector: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in (vector or {}).items():
        out[name] = SparseVec(list(v.indices), list(v.values)) if isinstance(v, qe.SparseVector) else list(v)
    return out


def _record(qe: Any, r: Any, with_vectors: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"id": str(r.id), "payload": dict(r.payload or {})}
    if with_vectors:
        item["vectors"] = _vectors_out(qe, r.vector)
    return item


class EdgeStore(Store):
    """A qdrant-edge-py shard in a folder: created when the folder holds none, else loaded.

    Args:
        path: Shard folder (the index folder's `store/`).
        schema: Dense spaces and HNSW settings; must match the shard's when it exists.
        options: HNSW beam width and int8 quantization with rescoring (defaults when None).

    Raises:
        IndexMismatchError: The shard was built with other vector spaces or dims.
        IndexLockedError: Another `EdgeStore` (in this or another process) has the folder open.

    Example:
        >>> with EdgeStore(tmp / "store", StoreSchema(dense={"image": 512})) as store:
        ...     store.upsert([PointData(id=point_id("abc", ""), dense={"image": vec}, payload={...})])
        ...     hits = store.query([Prefetch("image", dense=vec)], limit=5)
    """

    def __init__(self, path: str | Path, schema: StoreSchema, options: SearchOptions | None = None) -> None:
        self._qe = qe = _import_edge()
        self.path = Path(path)
        self.schema = schema
        self.options = options or SearchOptions()
        self._params = _search_params(qe, self.options)
        config = _edge_config(qe, schema, self.options)
        exists = (self.path / "edge_config.json").is_file() or (self.path / "segments").is_dir()
        try:
            if exists:
                self._shard = qe.EdgeShard.load(str(self.path), config)
            else:
                self._shard = qe.EdgeShard.create(str(self.path), config)
        except Exception as e:  # qdrant-edge raises bare `Exception` with a service message
            msg = str(e)
            if "incompatible" in msg:
                raise IndexMismatchError(f"{self.path}: built with another schema: {msg}") from e
            if "WouldBlock" in msg or "lock" in msg.lower():
                raise IndexLockedError(f"{self.path}: the store is open in another process or object") from e
            raise MMRAGError(f"{self.path}: cannot open the store: {msg}") from e
        self._closed = False
        self._ensure_field_indexes()

    def _ensure_field_indexes(self) -> None:
        qe = self._qe
        kinds = {
            "keyword": qe.PayloadSchemaType.Keyword,
            "integer": qe.PayloadSchemaType.Integer,
            "float": qe.PayloadSchemaType.Float,
        }
        have = set(self._shard.info().payload_schema)
        for name, kind in INDEXED_FIELDS.items():
            if name not in have:
                self._shard.update(qe.UpdateOperation.create_field_index(name, kinds[kind]))

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.path)!r}, dense={self.schema.dense})"

    @property
    def shard(self) -> Any:
        """The underlying `qdrant_edge.EdgeShard` (for snapshots, facets and other extras)."""
        if self._closed:
            raise MMRAGError(f"{self.path}: the store is closed")
        return self._shard

    def _point(self, p: PointData) -> qdrant_edge.Point:
        qe = self._qe
        what = f"point {p.id}"
        vector: dict[str, Any] = {name: dense_list(self.schema, name, v, what) for name, v in p.dense.items()}
        if p.sparse is not None:
            check_sparse(p.sparse.indices, p.sparse.values, what)
            vector[BM25] = qe.SparseVector(list(p.sparse.indices), list(p.sparse.values))
        return qe.Point(p.id, vector, p.payload)

    def upsert(self, points: Sequence[PointData]) -> None:
        for batch in batches(last_per_id(points)):
            self.shard.update(self._qe.UpdateOperation.upsert_points([self._point(p) for p in batch]))

    def delete_by_path(self, path: str) -> None:
        qe = self._qe
        flt = qe.Filter(must=[qe.FieldCondition("path", match=qe.MatchValue(path))])
        self.shard.update(qe.UpdateOperation.delete_points_by_filter(flt))

    def delete_ids(self, ids: Sequence[str]) -> None:
        if ids:
            self.shard.update(self._qe.UpdateOperation.delete_points(list(ids)))

    def _nearest(self, p: Prefetch) -> Any:
        qe = self._qe
        check_prefetch(self.schema, p)
        if p.sparse is not None:
            check_sparse(p.sparse.indices, p.sparse.values, f"prefetch using {p.using!r}")
            sparse = qe.SparseVector(list(p.sparse.indices), list(p.sparse.values))
            return qe.Query.Nearest(sparse, using=BM25)
        assert p.dense is not None
        return qe.Query.Nearest(dense_list(self.schema, p.using, p.dense, "query"), using=p.using)

    def _stage(self, p: Prefetch, edge_flt: Any) -> Any:
        """One prefetch stage (with its own first stage, when it reranks one)."""
        return self._qe.Prefetch(
            limit=p.limit,
            query=self._nearest(p),
            prefetches=[self._stage(p.first, edge_flt)] if p.first is not None else None,
            filter=edge_flt,
            params=None if p.sparse is not None else self._params,
        )

    def query(
        self,
        prefetches: Sequence[Prefetch],
        limit: int,
        flt: SearchFilter | None = None,
        fusion: Literal["rrf", "dbsf"] = "rrf",
        rrf_k: int = RRF_K,
    ) -> list[ScoredPoint]:
        qe = self._qe
        if not prefetches:
            raise MMRAGError("query needs at least one prefetch")
        edge_flt = _edge_filter(qe, flt)
        if len(prefetches) == 1:
            p = prefetches[0]
            params = None if p.sparse is not None else self._params
            request = qe.QueryRequest(
                limit=limit,
                query=self._nearest(p),
                prefetches=[self._stage(p.first, edge_flt)] if p.first is not None else None,
                filter=edge_flt,
                with_payload=True,
                params=params,
            )
        else:
            if fusion not in ("rrf", "dbsf"):
                raise MMRAGError(f"unknown fusion {fusion!r} (use 'rrf' or 'dbsf')")
            # The filter goes into every prefetch: each candidate list is drawn from matching points
            # only, so a narrow filter cannot leave the fused list empty.
            stages = [self._stage(p, edge_flt) for p in prefetches]
            fuse = qe.Fusion.Rrf(k=rrf_k) if fusion == "rrf" else qe.Fusion.Dbsf()
            request = qe.QueryRequest(limit=limit, prefetches=stages, query=fuse, with_payload=True)
        hits = self.shard.query(request)
        return [ScoredPoint(str(r.id), float(r.score), dict(r.payload or {})) for r in hits]

    def count(self, flt: SearchFilter | None = None) -> int:
        return int(self.shard.count(self._qe.CountRequest(exact=True, filter=_edge_filter(self._qe, flt))))

    def scroll(self, flt: SearchFilter | None = None, with_vectors: bool = False) -> Iterator[dict[str, Any]]:
        qe = self._qe
        edge_flt = _edge_filter(qe, flt)
        offset = None
        while True:
            records, offset = self.shard.scroll(
                qe.ScrollRequest(
                    offset=offset, limit=BATCH, filter=edge_flt, with_payload=True, with_vector=with_vectors
                )
            )
            for r in records:
                yield _record(qe, r, with_vectors)
            if offset is None:
                return

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[dict[str, Any]]:
        wanted = point_ids(ids)
        if not wanted:
            return []
        records = self.shard.retrieve(wanted, True, with_vectors)
        return in_order(wanted, (_record(self._qe, r, with_vectors) for r in records))

    def optimize(self) -> None:
        """Build HNSW graphs and merge segments now (blocks; seconds per 10k 512-d points)."""
        self.shard.optimize()

    def flush(self) -> None:
        self.shard.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._shard.flush()
        self._shard.close()
        self._closed = True
