"""Adaptive top-k: keep as many hits as the reranker's probabilities say are relevant.

The rule, on the scores sorted from best to worst:

1. Keep the hits whose probability is at least `threshold`.
2. Among the kept scores, look at the drops between neighbours. If the largest drop is *clearly* the
   largest, that is at least `gap_ratio` times the second largest and at least `min_gap` in
   probability, cut just before it: the hits below it form a second, weaker group. With fewer than
   two drops there is nothing to compare, and nothing is cut.
3. Clamp the count to [`min_k`, `max_k`] (`min_k` wins over the threshold: a query always gets
   something to read), and never exceed the number of scores.

Example:
    >>> adaptive_k([0.97, 0.95, 0.93, 0.40, 0.38, 0.10], threshold=0.3, min_k=1, max_k=10)
    3
    >>> adaptive_k([0.2, 0.1], threshold=0.5, min_k=1, max_k=10)
    1
"""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.types import MMRAGError

GAP_RATIO = 2.0
"""The largest drop must be at least this many times the second largest to cut there."""
MIN_GAP = 0.1
"""...and at least this large in probability: tiny drops between near-equal scores mean nothing."""


def adaptive_k(
    scores: Sequence[float],
    threshold: float,
    min_k: int,
    max_k: int,
    gap_ratio: float = GAP_RATIO,
    min_gap: float = MIN_GAP,
) -> int:
    """How many of the hits to keep, from their relevance probabilities (rule in the module docstring).

    Args:
        scores: One probability per hit; sorted here, best first, whatever order they come in.
        threshold: Hits below this probability are dropped.
        min_k: Never keep fewer (unless there are fewer scores).
        max_k: Never keep more.
        gap_ratio: How much larger than the runner-up the largest drop must be to cut there.
        min_gap: The smallest drop that counts as a cut.

    Returns:
        The number of hits to keep, in [min(min_k, len(scores)), min(max_k, len(scores))].

    Raises:
        MMRAGError: `min_k` is negative or larger than `max_k`.
    """
    if min_k < 0 or max_k < min_k:
        raise MMRAGError(f"adaptive k needs 0 <= min_k <= max_k, got min_k={min_k}, max_k={max_k}")
    ranked = sorted((float(s) for s in scores), reverse=True)
    kept = sum(1 for s in ranked if s >= threshold)
    gaps = [ranked[i] - ranked[i + 1] for i in range(kept - 1)]
    if len(gaps) >= 2:
        largest = max(range(len(gaps)), key=gaps.__getitem__)  # first of equal drops
        runner_up = max(g for i, g in enumerate(gaps) if i != largest)
        if gaps[largest] >= min_gap and gaps[largest] >= gap_ratio * runner_up:
            kept = largest + 1
    return min(max(kept, min_k), max_k, len(ranked))
