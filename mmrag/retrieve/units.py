"""Pages and documents as units: hits folded to pages, pages ranked by their best points together.

A PDF page is indexed as one `page` point (the whole page) and its `text` windows. A question's
evidence is usually one page, so the page is the unit a reader wants: `group_pages` folds fused
points into pages, each scored by its best `PAGE_POINTS` points (windows and the page point
together, so a page that matches twice beats one lucky window). `document_scores` does the same one
level up, for the two-stage `document-page` search: the best documents first, then pages within
them. Points without a page (images, video clips, text files) are units of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.store.base import ScoredPoint

PAGE_POINTS = 2
"""Best points of a page that add up to its score."""
DOC_PAGES = 3
"""Best pages of a document that add up to its score."""
PAGE_WEIGHTS = (1.0, 0.5, 0.25)
"""Weight of a unit's best, second and third point."""


def unit_key(p: ScoredPoint) -> tuple[str, object]:
    """`(path, page)` of a point on a page; `(path, id)` of anything else."""
    page = p.payload.get("page")
    return (str(p.payload.get("path", "")), page if page is not None else f"#{p.id}")


def _weighted(scores: Sequence[float], n: int) -> float:
    top = sorted(scores, reverse=True)[:n]
    return sum(w * s for w, s in zip(PAGE_WEIGHTS, top, strict=False))


def group_pages(points: Sequence[ScoredPoint], points_per_page: int = PAGE_POINTS) -> list[ScoredPoint]:
    """One point per page, ranked by the weighted sum of the page's best points' scores.

    The point kept for a page is its `page` point when the page has one among the candidates (it
    carries the whole page text), else its best point; its score becomes the page's score.
    """
    scores: dict[tuple[str, object], list[float]] = {}
    keep: dict[tuple[str, object], ScoredPoint] = {}
    for p in points:
        key = unit_key(p)
        scores.setdefault(key, []).append(p.score)
        best = keep.get(key)
        if best is None or (p.payload.get("modality") == "page" and best.payload.get("modality") != "page"):
            keep[key] = p
    ranked = sorted(scores, key=lambda k: -_weighted(scores[k], points_per_page))
    return [ScoredPoint(keep[k].id, _weighted(scores[k], points_per_page), keep[k].payload) for k in ranked]


def document_scores(pages: Sequence[ScoredPoint], pages_per_doc: int = DOC_PAGES) -> list[tuple[str, float]]:
    """Documents (paths) ranked by the weighted sum of their best pages' scores."""
    scores: dict[str, list[float]] = {}
    for p in pages:
        scores.setdefault(str(p.payload.get("path", "")), []).append(p.score)
    return sorted(((d, _weighted(s, pages_per_doc)) for d, s in scores.items()), key=lambda x: -x[1])
