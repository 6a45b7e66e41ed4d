"""The store interface: one collection, named dense vectors per space, one sparse BM25 vector.

Two backends implement it: `EdgeStore` (qdrant-edge-py, embedded, the default) and
`ClientStore` (qdrant-client: a Qdrant server or cluster, or `:memory:` in tests).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np

# The plain point records live in `mmrag.types` (encoders build them, stores write them); re-exported.
from mmrag.types import POINT_NAMESPACE as POINT_NAMESPACE
from mmrag.types import PointData as PointData
from mmrag.types import SparseVec as SparseVec
from mmrag.types import point_id as point_id

BM25 = "bm25"
# Payload fields that get an index (filters on them stay fast at scale).
INDEXED_FIELDS: dict[str, Literal["keyword", "integer", "float"]] = {
    "modality": "keyword",
    "path": "keyword",
    "file_hash": "keyword",
    "page": "integer",
    "t_start": "float",
}


# Qdrant's own default RRF constant (server and qdrant-client local mode use k=2); qdrant-edge-py
# wants it spelled out, so both backends fuse identically unless `search.rrf_k` says otherwise.
RRF_K = 2


@dataclass
class SearchFilter:
    """Payload filter applied to every prefetch. All set conditions must hold.

    `paths` are exact paths (the pipeline expands a glob into them); ranges are inclusive.
    """

    modalities: list[str] | None = None
    paths: list[str] | None = None
    page_min: int | None = None
    page_max: int | None = None
    t_min: float | None = None
    t_max: float | None = None
    match: dict[str, list[str]] | None = None
    """Other keyword payload fields: the field holds one of the values (e.g. `source`)."""

    def is_empty(self) -> bool:
        return all(v is None for v in vars(self).values())


@dataclass
class Prefetch:
    """One candidate list: a dense query in a named space, or the sparse BM25 query.

    In a multi-vector space `dense` is the query's (tokens, dim) matrix, scored by MaxSim. `first`
    is an optional earlier stage whose candidates this one rescores: late interaction prefetches
    with the page's single pooled vector (HNSW) and reranks those with the full multi-vector.
    """

    using: str
    dense: np.ndarray | None = None
    sparse: SparseVec | None = None
    limit: int = 50
    first: Prefetch | None = None


@dataclass
class ScoredPoint:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass
class StoreSchema:
    """Named dense spaces with their dims (cosine distance); the sparse `bm25` space is always there.

    `multi` names the multi-vector (late-interaction) spaces with their per-token dims: cosine
    similarities combined by MaxSim, and no HNSW graph (they only rerank an earlier stage).
    """

    dense: dict[str, int]
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    on_disk: bool = False
    multi: dict[str, int] = field(default_factory=dict)


# int8 scalar quantization clips the extreme 1% of values per dimension: the usual choice, and
# what keeps a few outliers from stretching the 256 levels over an empty range.
INT8_QUANTILE = 0.99


@dataclass(frozen=True)
class SearchOptions:
    """How dense search trades speed, memory and recall; both backends apply these.

    `quantization` takes effect when a collection is created and, for the embedded store, also
    when an existing shard is opened (its next `optimize()` builds the int8 copies).
    """

    quantization: Literal["none", "int8"] = "none"
    """`int8`: scalar-quantize dense vectors (4x less RAM for search) and rescore with the originals."""
    quantization_always_ram: bool = True
    """Keep the int8 copies in RAM even when the original vectors are on disk."""
    oversampling: float = 2.0
    """With int8: candidates fetched per wanted hit before rescoring with the original vectors."""
    hnsw_ef: int | None = None
    """HNSW search beam width (None: the engine's default, which follows the limit)."""

    def __post_init__(self) -> None:
        from mmrag.types import MMRAGError

        if self.hnsw_ef is not None and self.hnsw_ef < 1:
            raise MMRAGError(f"store.hnsw_ef must be at least 1, got {self.hnsw_ef}")
        if self.quantization not in ("none", "int8"):
            raise MMRAGError(f"store.quantization must be 'none' or 'int8', got {self.quantization!r}")
        if self.oversampling < 1:
            raise MMRAGError(f"store.oversampling must be at least 1, got {self.oversampling}")

    @classmethod
    def from_config(cls, store: Any) -> Self:
        """The options of a `StoreConfig` (fields it lacks keep their defaults here)."""
        defaults = cls()
        names = cls.__dataclass_fields__
        return cls(**{name: getattr(store, name, getattr(defaults, name)) for name in names})


class Store(ABC):
    """A Qdrant collection seen through the operations the pipeline needs."""

    schema: StoreSchema

    @abstractmethod
    def upsert(self, points: Sequence[PointData]) -> None:
        """Insert or overwrite points (same id: replaced, never duplicated)."""

    @abstractmethod
    def delete_by_path(self, path: str) -> None:
        """Delete every point whose payload `path` equals `path`."""

    @abstractmethod
    def delete_ids(self, ids: Sequence[str]) -> None:
        """Delete points by id (ids that do not exist are ignored)."""

    @abstractmethod
    def query(
        self,
        prefetches: Sequence[Prefetch],
        limit: int,
        flt: SearchFilter | None = None,
        fusion: Literal["rrf", "dbsf"] = "rrf",
        rrf_k: int = RRF_K,
    ) -> list[ScoredPoint]:
        """Run each prefetch under the filter and fuse them (one prefetch: its own ranking).

        `rrf_k` is RRF's rank constant (a hit at 0-based rank r scores 1/(rrf_k + r + 1))."""

    @abstractmethod
    def count(self, flt: SearchFilter | None = None) -> int:
        """Number of points (under a filter)."""

    @abstractmethod
    def scroll(self, flt: SearchFilter | None = None, with_vectors: bool = False) -> Iterator[dict[str, Any]]:
        """Every point as `{"id", "payload", "vectors"?}` (vectors: name -> list or SparseVec)."""

    @abstractmethod
    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[dict[str, Any]]:
        """The points with these ids, as `scroll` gives them, in the order asked.

        Ids the store does not hold (and strings that are not point ids) are left out; an id asked
        twice comes back once. One request, however large the store: no scan.
        """

    def optimize(self) -> None:
        """Build search indexes (HNSW) now; a no-op where the backend indexes in the background.

        The embedded store indexes nothing until this is called: search stays exact but brute-force.
        """
        return None

    @abstractmethod
    def flush(self) -> None:
        """Make every upsert so far durable."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the store."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
