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

from mmrag.retrieve.filters import SOURCE_FIELD as SOURCE
from mmrag.retrieve.query import Query, build_prefetches, to_hits
from mmrag.retrieve.units import document_scores, group_pages, unit_key
from mmrag.store.base import BM25, Prefetch, ScoredPoint, SearchFilter
from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from mmrag.config import RerankConfig, SearchConfig
    from mmrag.encoders.embedders import Embedders
    from mmrag.retrieve.hubness import HubnessBanks
    from mmrag.retrieve.route import Route, Router
    from mmrag.store.base import Store

SPACES = ("text", "bm25", "image", "page")
GROUPS = ("chunk", "page", "document-page")
TOP_DOCUMENTS = 2
"""Documents whose pages come first in a `document-page` search."""


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


def fuse(
    lists: Sequence[Sequence[ScoredPoint]],
    method: str,
    limit: int,
    rrf_k: int,
    weights: Sequence[float] | None = None,
) -> list[ScoredPoint]:
    """Fuse ranked lists the way Qdrant does: RRF (sum of 1/(k + rank + 1)) or DBSF.

    DBSF normalises each list's scores by mean +- 3 standard deviations, then sums them. `weights`
    multiply each list's contributions (None: all 1, Qdrant's fusion).
    """
    score: dict[str, float] = {}
    payload: dict[str, dict[str, Any]] = {}
    for n, lst in enumerate(lists):
        w = 1.0 if weights is None else weights[n]
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
            score[p.id] = score.get(p.id, 0.0) + w * s
            payload.setdefault(p.id, p.payload)
    ranked = sorted(score, key=lambda i: -score[i])[:limit]
    return [ScoredPoint(i, score[i], payload[i]) for i in ranked]


def _fetch(
    store: Store,
    search: SearchConfig,
    prefetches: list[Prefetch],
    limit: int,
    flt: SearchFilter | None,
    banks: HubnessBanks | None,
) -> list[ScoredPoint]:
    weighted = search.dense_weight != 1.0 and len(prefetches) > 1
    if banks is None and not weighted:
        return store.query(prefetches, limit=limit, flt=flt, fusion=search.fusion, rrf_k=search.rrf_k)
    lists: list[list[ScoredPoint]] = []
    for p in prefetches:
        if banks is not None and p.using != BM25 and p.dense is not None and banks.has(p.using):
            from mmrag.retrieve.hubness import corrected_search

            lists.append(corrected_search(store, banks, p.using, p.dense, p.limit, flt, 4 * p.limit))
        else:
            lists.append(store.query([p], limit=p.limit, flt=flt))
    if len(lists) == 1:
        return lists[0][:limit]
    weights = [1.0 if p.using == BM25 else search.dense_weight for p in prefetches]
    return fuse(lists, search.fusion, limit, search.rrf_k, weights)


def _restrict(
    flt: SearchFilter | None, paths: list[str] | None, match: dict[str, list[str]]
) -> SearchFilter | None:
    """`flt` further restricted to `paths` and `match`; None when that leaves nothing to search."""
    base = flt or SearchFilter()
    if paths is not None and base.paths is not None:
        paths = sorted(set(paths) & set(base.paths))
        if not paths:
            return None
    merged = {**(base.match or {}), **match} or None
    return replace(base, paths=paths if paths is not None else base.paths, match=merged)


def _route_filters(route: Route, flt: SearchFilter | None) -> list[SearchFilter]:
    """One filter per side the question names (an entity's documents, a source), or one for all."""
    out: list[SearchFilter | None] = []
    if route.groups:
        out = [_restrict(flt, g, route.match) for g in route.groups]
    elif len(route.sources) > 1:
        out = [_restrict(flt, None, {**route.match, SOURCE: [s]}) for s in route.sources]
    if len([f for f in out if f is not None]) < 2:
        out = [_restrict(flt, route.paths or None, route.match)]
    return [f for f in out if f is not None]


def _interleave(lists: list[list[ScoredPoint]], limit: int) -> list[ScoredPoint]:
    """Round-robin over ranked lists, each point once, rescored by its place (RRF-like, 1/(2+r+1))."""
    seen: dict[str, ScoredPoint] = {}
    for rank in range(max((len(lst) for lst in lists), default=0)):
        for lst in lists:
            if rank < len(lst) and lst[rank].id not in seen:
                seen[lst[rank].id] = lst[rank]
    ranked = list(seen.values())[:limit]
    return [ScoredPoint(p.id, 1.0 / (3 + r), p.payload) for r, p in enumerate(ranked)]


def _routed(
    fetch: Any, route: Route, flt: SearchFilter | None, k: int, mode: str, rrf_k: int
) -> list[ScoredPoint]:
    """Points of a routed question: `filter` (routed first, filled from the rest) or `boost` (fused)."""
    flts = _route_filters(route, flt)
    if not flts:
        return list(fetch(flt))
    lists = [fetch(f) for f in flts]
    routed = lists[0] if len(lists) == 1 else _interleave(lists, k)
    if mode == "boost":
        return fuse([routed, fetch(flt)], "rrf", k, rrf_k)
    if len(routed) < k:  # the question's names were too narrow: fill from the unrestricted list
        seen = {p.id for p in routed}
        routed = routed + [p for p in fetch(flt) if p.id not in seen]
    return routed[:k]


def _two_stage(pages: list[ScoredPoint], search_once: Any, flt: SearchFilter | None) -> list[ScoredPoint]:
    """Documents first: the pages of the `TOP_DOCUMENTS` best documents (searched again within
    them, so that more of their pages are candidates), then every other page as ranked."""
    top = [d for d, _ in document_scores(pages)[:TOP_DOCUMENTS]]
    inner = _restrict(flt, top, {})
    if not top or inner is None:
        return pages
    first = group_pages(search_once(inner))
    seen = {unit_key(p) for p in first}
    return first + [p for p in pages if unit_key(p) not in seen]


def retrieve(
    store: Store,
    embedders: Embedders,
    search: SearchConfig,
    q: Query,
    k: int,
    *,
    spaces: Sequence[str] | None = None,
    banks: HubnessBanks | None = None,
    router: Router | None = None,
    route: str = "filter",
    group: str = "chunk",
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
        router: Reads the documents, sources and days a question names (None: no routing).
        route: `filter` searches the routed documents first (filled from the rest when they give
            fewer than k hits); `boost` fuses the routed and the unrestricted lists.
        group: Hit units: `chunk`, `page` (each page once, scored by its best points) or
            `document-page` (the best documents' pages first, `TOP_DOCUMENTS` of them).
    """
    timings: dict[str, float] = {}
    if spaces is not None:
        bad = [s for s in spaces if s not in SPACES]
        if bad:
            raise MMRAGError(f"unknown space {bad[0]!r}: choose from {', '.join(SPACES)}")
    t0 = time.perf_counter()
    routed = router.read(q.text) if router is not None and q.text else None
    prefetches = build_prefetches(q, embedders, search.prefetch, store.schema.dense, use=spaces)
    timings["embed"] = time.perf_counter() - t0
    if not prefetches:
        return Retrieval([], 0, timings=timings)
    if group not in GROUPS:
        raise MMRAGError(f"unknown hit unit {group!r}: choose from {', '.join(GROUPS)}")
    if routed and route not in ("filter", "boost"):
        raise MMRAGError(f"unknown route mode {route!r} (use 'filter' or 'boost')")
    t1 = time.perf_counter()
    # pages and documents are ranked from every fused candidate, not only the first k
    limit = k if group == "chunk" else max(k, 2 * search.prefetch)

    def fetch(f: SearchFilter | None) -> list[ScoredPoint]:
        return _fetch(store, search, prefetches, limit, f, banks)

    def search_once(flt: SearchFilter | None) -> list[ScoredPoint]:
        if routed:
            return _routed(fetch, routed, flt, limit, route, search.rrf_k)
        return fetch(flt)

    points = search_once(q.flt)
    if group != "chunk":
        points = group_pages(points)
        if group == "document-page":
            points = _two_stage(points, search_once, q.flt)
    timings["search"] = time.perf_counter() - t1
    hits = to_hits(points)
    return Retrieval(
        hits[:k],
        min(k, len(hits)),
        candidates=len(hits),
        filters=routed.record() if routed is not None else {},
        hubness=banks is not None,
        timings=timings,
    )
