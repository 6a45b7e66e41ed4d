"""Queries: embed a text or image query into every space that can read it, prefetch, fuse.

A text query goes to the `text` space (text embedder), to `bm25`, and to the `image` space when
the image encoder has an aligned text tower (CLIP, SigLIP). An image query goes to the `image`
space. Each space gives `prefetch` candidates under the same filter; RRF (or DBSF) fuses them.

With a page encoder (ColPali, ColQwen2), a text query also goes to the `page` space in two stages:
the pooled query vector fetches `PAGE_FIRST_STAGE` x `prefetch` pages by their pooled vectors
(`page_mean`, HNSW), and MaxSim over the query's token vectors and the pages' patch vectors ranks
those; the result is one more list for the fusion.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmrag.encoders import aligned_image_space
from mmrag.store.base import BM25, Prefetch, ScoredPoint, SearchFilter
from mmrag.store.multivector import mean_vector
from mmrag.types import MODALITIES, Hit, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.encoders.embedders import Embedders


# Pages fetched by their pooled vector per page kept after MaxSim reranking.
PAGE_FIRST_STAGE = 4


@dataclass
class Query:
    """A parsed query: text and/or image, and filters."""

    text: str | None = None
    image: Image.Image | None = None
    flt: SearchFilter | None = None


def build_prefetches(
    q: Query, emb: Embedders, limit: int, spaces: Iterable[str], use: Iterable[str] | None = None
) -> list[Prefetch]:
    """One prefetch per space that can read the query (only spaces that exist in the index).

    `use` restricts the spaces a text query goes to (`text`, `bm25`, `image`): `["bm25"]` is
    lexical search alone, `["text"]` dense text search alone, `["page"]` late interaction alone.
    """
    have = set(spaces) | {BM25}
    if "page_mean" in have:
        have.add("page")  # the page space: its pooled vectors and its multi-vectors
    if use is not None:
        have &= set(use)
    out: list[Prefetch] = []
    if q.text:
        if "text" in have and emb.cfg.text:
            out.append(Prefetch("text", dense=emb.text_vectors([q.text], "text", "query")[0], limit=limit))
        sparse = emb.bm25.embed_query(q.text) if BM25 in have else None
        if sparse is not None and sparse.indices:
            out.append(Prefetch(BM25, sparse=sparse, limit=limit))
        image_enc = emb.image if aligned_image_space(emb.cfg.image) else None
        if "image" in have and image_enc is not None:
            out.append(Prefetch("image", dense=emb.text_vectors([q.text], "image")[0], limit=limit))
        if "page" in have and emb.page is not None:
            tokens = emb.page.encode_queries([q.text])[0]
            first = Prefetch("page_mean", dense=mean_vector(tokens), limit=PAGE_FIRST_STAGE * limit)
            out.append(Prefetch("page", dense=tokens, limit=limit, first=first))
    if q.image is not None:
        if "image" not in have or emb.image is None:
            raise MMRAGError(
                "this index has no image space; an image query needs an index built with an image encoder"
            )
        out.append(Prefetch("image", dense=emb.image.encode_images([q.image]).vectors[0], limit=limit))
    return out


def to_hits(points: list[ScoredPoint]) -> list[Hit]:
    out = []
    for p in points:
        pl = p.payload
        out.append(
            Hit(
                id=str(p.id),
                score=float(p.score),
                modality=str(pl.get("modality", "")),
                path=str(pl.get("path", "")),
                page=pl.get("page"),
                t_start=pl.get("t_start"),
                t_end=pl.get("t_end"),
                text=pl.get("text"),
                payload=pl,
            )
        )
    return out


_RANGE = re.compile(r"^\s*(-?[\d.]+)?\s*(?:-|:|\.\.)\s*(-?[\d.]+)?\s*$")


def parse_range(spec: str | None, what: str) -> tuple[float | None, float | None]:
    """`3-7`, `3:7`, `3..7`, `5` (exactly), `-7` or `3-` (open) into (low, high)."""
    if spec is None or not spec.strip():
        return None, None
    spec = spec.strip()
    lo: float | None
    hi: float | None
    try:
        if re.fullmatch(r"-?[\d.]+", spec):
            lo = hi = float(spec)
        else:
            m = _RANGE.match(spec)
            if not m or (m.group(1) is None and m.group(2) is None):
                raise ValueError(spec)
            lo = float(m.group(1)) if m.group(1) else None
            hi = float(m.group(2)) if m.group(2) else None
    except ValueError:
        raise MMRAGError(f"bad {what} range {spec!r}: use LOW-HIGH, LOW-, -HIGH or a single value") from None
    if any(v is not None and not math.isfinite(v) for v in (lo, hi)):
        raise MMRAGError(f"bad {what} range {spec!r}: number too large")
    if lo is not None and hi is not None and lo > hi:
        raise MMRAGError(f"bad {what} range {spec!r}: low end is above high end")
    return lo, hi


def make_filter(
    modality: str | list[str] | None = None,
    path: str | None = None,
    pages: str | None = None,
    time: str | None = None,
    known_paths: Iterable[str] = (),
) -> SearchFilter | None:
    """Build a store filter from user-facing options; a path glob is expanded over the indexed files.

    Pages are one-based in the user's ranges ("pages 3-5" as a reader counts them) and zero-based in
    the store, like the FinanceBench evidence; times are seconds.
    """
    mods = [modality] if isinstance(modality, str) else modality
    if mods:
        bad = [m for m in mods if m not in MODALITIES]
        if bad:
            raise MMRAGError(f"unknown modality {bad[0]!r}: choose from {', '.join(MODALITIES)}")
    paths = None
    if path:
        pats = [path] if path.startswith("/") else [path, "*/" + path.lstrip("./")]
        paths = sorted(p for p in known_paths if any(fnmatch.fnmatchcase(p, pat) for pat in pats))
        if not paths:
            paths = ["\0no-match"]  # a filter that matches nothing, not no filter
    p_lo, p_hi = parse_range(pages, "page")
    t_lo, t_hi = parse_range(time, "time")
    flt = SearchFilter(
        modalities=list(mods) if mods else None,
        paths=paths,
        page_min=int(p_lo) - 1 if p_lo is not None else None,
        page_max=int(p_hi) - 1 if p_hi is not None else None,
        t_min=t_lo,
        t_max=t_hi,
    )
    return None if flt.is_empty() else flt
