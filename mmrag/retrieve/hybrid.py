"""The retrieval stage behind `Pipeline.search`: prefetch, fuse, filter, correct hubness, rerank.

One call runs, in order:
1. filters read from the question (`search.filters_from_query`: source names, publication dates);
2. one prefetch per space that can read the query (`text`, `bm25`, `image`), optionally restricted;
3. fusion in Qdrant (RRF with `search.rrf_k`, or DBSF), or, with hubness correction on, the dense
   lists corrected by dual-bank normalisation (`mmrag/hubness.py`) and fused here the same way;
The facade then hands the candidates to a reranker (`mmrag.rerank.rerank_retrieval`): this stage
never imports `rerank/`.

`Retrieval` records what happened (chosen k, filters, timings) for the CLI's `--json` and the evals.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mmrag.retrieve.query import Query, build_prefetches, to_hits
from mmrag.store.base import BM25, Prefetch, ScoredPoint, SearchFilter
from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from mmrag.config import RerankConfig, SearchConfig
    from mmrag.encoders.embedders import Embedders
    from mmrag.retrieve.filters import FilterReader
    from mmrag.retrieve.hubness import HubnessBanks
    from mmrag.store.base import Store

SPACES = ("text", "bm25", "image")


@dataclass
class Retrieval:
    """The hits of one query and how they were found."""

    hits: list[Hit]
    k: int
    """Hits kept (adaptive k's choice when on)."""
    candidates: int = 0
    """Fused candidates before reranking."""
    filters: dict[str, list[str]] = field(default_factory=dict)
    """Conditions read from the question."""
    rerank: str | None = None
    """Reranker that ordered the hits."""
    hubness: bool = False
    """Whether the dense lists were hubness-corrected."""
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "candidates": self.candidates,
            "filters": self.filters,
            "rerank": self.rerank,
            "hubness": self.hubness,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "hits": [h.to_dict() for h in self.hits],
        }


def rerank_config(base: RerankConfig, method: str | None, adaptive_k: bool | None) -> RerankConfig:
    """`base` with a call's reranker and adaptive-k choices (None keeps the configured one), checked."""
    from typing import get_args, get_type_hints

    from mmrag.config import RerankConfig

    chosen: Any = method if method is not None else base.method
    methods = get_args(get_type_hints(RerankConfig)["method"])
    if chosen not in methods:
        raise MMRAGError(f"unknown reranker {chosen!r}: choose from {', '.join(methods)}")
    cfg = replace(base, method=chosen, adaptive_k=base.adaptive_k if adaptive_k is None else adaptive_k)
    if cfg.adaptive_k and cfg.method == "none":
        raise MMRAGError("adaptive k reads a reranker's scores: choose a reranker (--rerank llm, ...)")
    return cfg


def fuse(lists: Sequence[Sequence[ScoredPoint]], method: str, limit: int, rrf_k: int) -> list[ScoredPoint]:
    """Fuse ranked lists the way Qdrant does: RRF (sum of 1/(k + rank + 1)) or DBSF.

    DBSF normalises each list's scores by mean +- 3 standard deviations, then sums them.
    """
    score: dict[str, float] = {}
    payload: dict[str, dict[str, Any]] = {}
    for lst in lists:
        if not lst:
            continue
        if method == "rrf":
            parts = [1.0 / (rrf_k + r + 1) for r in range(len(lst))]
        elif method == "dbsf":
            vals = [p.score for p in lst]
            mean = sum(vals) / len(vals)
            std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
            lo, hi = mean - 3 * std, mean + 3 * std
            parts = [(v - lo) / (hi - lo) if hi > lo else 0.5 for v in vals]
        else:
            raise MMRAGError(f"unknown fusion {method!r} (use 'rrf' or 'dbsf')")
        for p, s in zip(lst, parts, strict=True):
            score[p.id] = score.get(p.id, 0.0) + s
            payload.setdefault(p.id, p.payload)
    ranked = sorted(score, key=lambda i: -score[i])[:limit]
    return [ScoredPoint(i, score[i], payload[i]) for i in ranked]


def _merge_filters(flt: SearchFilter | None, match: dict[str, list[str]]) -> SearchFilter:
    base = flt or SearchFilter()
    return replace(base, match={**(base.match or {}), **match})


def _fetch(
    store: Store,
    search: SearchConfig,
    prefetches: list[Prefetch],
    limit: int,
    flt: SearchFilter | None,
    banks: HubnessBanks | None,
) -> list[ScoredPoint]:
    if banks is None:
        return store.query(prefetches, limit=limit, flt=flt, fusion=search.fusion, rrf_k=search.rrf_k)
    from mmrag.retrieve.hubness import corrected_search

    lists: list[list[ScoredPoint]] = []
    for p in prefetches:
        if p.using != BM25 and p.dense is not None and banks.has(p.using):
            lists.append(corrected_search(store, banks, p.using, p.dense, p.limit, flt, 4 * p.limit))
        else:
            lists.append(store.query([p], limit=p.limit, flt=flt))
    if len(lists) == 1:
        return lists[0][:limit]
    return fuse(lists, search.fusion, limit, search.rrf_k)


def retrieve(
    store: Store,
    embedders: Embedders,
    search: SearchConfig,
    q: Query,
    k: int,
    *,
    spaces: Sequence[str] | None = None,
    banks: HubnessBanks | None = None,
    question_filters: FilterReader | None = None,
) -> Retrieval:
    """Run the retrieval stage for one parsed query (see the module docstring); no reranking.

    Args:
        store: The index's store.
        embedders: The index's encoders (the query is embedded into every space that reads it).
        search: `prefetch`, `fusion` and `rrf_k`.
        q: The query text and/or image, and the filters given with it.
        k: Hits to return (the candidates a reranker will read, when one follows).
        spaces: Restrict a text query to these spaces (`text`, `bm25`, `image`).
        banks: Hubness banks: the dense lists are corrected with them (None: plain scores).
        question_filters: Reads names and dates in the question as filters (None: none are read).
    """
    timings: dict[str, float] = {}
    if spaces is not None:
        bad = [s for s in spaces if s not in SPACES]
        if bad:
            raise MMRAGError(f"unknown space {bad[0]!r}: choose from {', '.join(SPACES)}")
    t0 = time.perf_counter()
    match: dict[str, list[str]] = {}
    if question_filters is not None and q.text:
        match = question_filters.read(q.text).match()
    prefetches = build_prefetches(q, embedders, search.prefetch, store.schema.dense, use=spaces)
    timings["embed"] = time.perf_counter() - t0
    if not prefetches:
        return Retrieval([], 0, timings=timings)
    t1 = time.perf_counter()
    if match:
        points = _fetch(store, search, prefetches, k, _merge_filters(q.flt, match), banks)
        if len(points) < k:  # the question's names were too narrow: fill from the unfiltered list
            seen = {p.id for p in points}
            points += [p for p in _fetch(store, search, prefetches, k, q.flt, banks) if p.id not in seen]
            points = points[:k]
    else:
        points = _fetch(store, search, prefetches, k, q.flt, banks)
    timings["search"] = time.perf_counter() - t1
    hits = to_hits(points)
    return Retrieval(
        hits[:k],
        min(k, len(hits)),
        candidates=len(hits),
        filters=match,
        hubness=banks is not None,
        timings=timings,
    )
