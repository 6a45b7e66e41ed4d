"""The reranker interface, and `rerank`: score the fused candidates, reorder them, choose how many to keep.

Every reranker maps (query, hit) pairs to a relevance probability in [0, 1], so scores from
different methods read the same way and one adaptive-k threshold means the same thing for all of
them. The fused score a hit came with is kept in its payload (`fused_score`, with `fused_rank`).
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from mmrag.rerank.adaptive import adaptive_k
from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from mmrag.config import RerankConfig

T = TypeVar("T")

# Passage text given to a reranker; longer texts are cut (models read a few hundred tokens anyway).
MAX_PASSAGE_CHARS = 4000


class Reranker(ABC):
    """Scores how well each hit answers a query.

    Attributes:
        name: Method and model, e.g. `llm:smollm2-135m`, `cross-encoder:BAAI/bge-reranker-base`.
        batch_size: Query-hit pairs per forward pass.
    """

    name: str = "reranker"
    batch_size: int = 8

    @abstractmethod
    def score(self, query: str, hits: Sequence[Hit]) -> list[float]:
        """One relevance probability in [0, 1] per hit, in the order of `hits`.

        Args:
            query: The user's query text.
            hits: Candidates (any modality; each method documents how it reads non-text hits).

        Returns:
            `len(hits)` floats in [0, 1]; higher means more relevant.
        """

    def batches(self, items: Sequence[T]) -> Iterator[Sequence[T]]:
        """`items` in slices of `batch_size`."""
        size = max(1, int(self.batch_size))
        for i in range(0, len(items), size):
            yield items[i : i + size]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, batch_size={self.batch_size})"


def passage(hit: Hit, max_chars: int = MAX_PASSAGE_CHARS) -> str:
    """What a reranker reads of a hit: its stored text, then its image tags (as the index embedded them)."""
    parts = [" ".join(hit.text.split())] if hit.text and hit.text.strip() else []
    tags = hit.payload.get("tags") or []
    if tags and hit.modality != "page":
        parts.append("tags: " + ", ".join(str(t) for t in tags))
    return "\n".join(parts)[:max_chars]


@dataclass
class RerankResult:
    """What `rerank` did to one query's candidates.

    Attributes:
        hits: The kept hits, best first; each `score` is the reranker's probability, and the payload
            holds the fused score (`fused_score`) and the 0-based fused rank (`fused_rank`).
        k: How many hits were asked to be kept: the `k` argument, or the adaptive choice.
            `hits` is shorter when there were fewer candidates.
        scores: The reranker probability of every scored candidate, in the new order (descending);
            `scores[: len(hits)]` belong to `hits`. The tail is what adaptive k looked at.
        seconds: Time spent scoring.
    """

    hits: list[Hit]
    k: int
    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0


def rerank(reranker: Reranker, query: str, hits: Sequence[Hit], cfg: RerankConfig, k: int) -> RerankResult:
    """Score the first `cfg.candidates` hits, reorder them by score, and keep `k` (or an adaptive number).

    Ties keep the fused order (the sort is stable), so a reranker that cannot tell two hits apart
    never undoes the first stage.

    Args:
        reranker: From `make_reranker`.
        query: The query text.
        hits: Fused candidates, best first.
        cfg: `candidates` caps how many are scored; `adaptive_k`, `threshold`, `min_k`, `max_k` choose k.
        k: Hits to keep when `cfg.adaptive_k` is off.

    Returns:
        `RerankResult` with the kept hits, the chosen k, all candidate scores and the scoring time.

    Raises:
        MMRAGError: The reranker returned the wrong number of scores or a score outside [0, 1].
    """
    candidates = list(hits[: max(0, cfg.candidates)])
    t0 = time.perf_counter()
    probs = reranker.score(query, candidates) if candidates else []
    seconds = time.perf_counter() - t0
    if len(probs) != len(candidates):
        raise MMRAGError(f"{reranker.name}: {len(probs)} scores for {len(candidates)} hits")
    if any(not 0.0 <= p <= 1.0 for p in probs):  # also catches NaN
        raise MMRAGError(f"{reranker.name}: scores must be probabilities in [0, 1], got {probs}")
    order = sorted(range(len(candidates)), key=lambda i: -probs[i])
    ranked = [
        dataclasses.replace(
            candidates[i],
            score=float(probs[i]),
            payload={**candidates[i].payload, "fused_score": candidates[i].score, "fused_rank": i},
        )
        for i in order
    ]
    scores = [float(probs[i]) for i in order]
    chosen = adaptive_k(scores, cfg.threshold, cfg.min_k, cfg.max_k) if cfg.adaptive_k else k
    return RerankResult(ranked[: max(0, chosen)], chosen, scores, seconds)
