"""Multi-vector (late-interaction) arithmetic: MaxSim, the pooled prefetch vector, and patch pooling.

A page embedded by ColPali or ColQwen2 is a matrix of patch vectors (ColPali: 1,024 image patches
plus a few prompt tokens, 128-d each); a query is a matrix of token vectors. Their score is MaxSim
(Khattab and Zaharia, 2020): for each query token, its best cosine over the page's vectors, summed.

Stored as float32, a ColPali page costs 1,030 x 128 x 4 B = 527 KB. Two ways to cut it:

- `hierarchical_pool`: hierarchical token pooling (Clavié et al., 2024): Ward clustering of a
  page's vectors into `len / factor` groups, each group replaced by its renormalised mean. The
  authors report a factor of 2-3 keeps retrieval quality within about 1% on ViDoRe; `bench/pages.py`
  measures it here.
- `mean_vector`: the single pooled vector that the store indexes with HNSW. It prefetches
  candidates cheaply; MaxSim over the full multi-vector then reranks them, as Qdrant recommends.

Everything here is numpy; the store backends compute MaxSim themselves, and `maxsim` is the
reference the tests hold them to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmrag.types import MMRAGError


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """MaxSim of a (q, d) query against a (n, d) document under cosine similarity (Qdrant's score)."""
    return float((_normalise(query) @ _normalise(doc).T).max(axis=1).sum())


def maxsim_rank(query: np.ndarray, docs: Sequence[np.ndarray]) -> list[int]:
    """Indices of `docs` by decreasing MaxSim against `query` (exact; the reference ranking)."""
    scores = [maxsim(query, d) for d in docs]
    return sorted(range(len(docs)), key=lambda i: -scores[i])


def mean_vector(multi: np.ndarray) -> np.ndarray:
    """The single prefetch vector of a multi-vector: the mean of its normalised rows, renormalised."""
    return _normalise(_normalise(multi).mean(axis=0, keepdims=True))[0]


def hierarchical_pool(multi: np.ndarray, factor: int, pool: np.ndarray | None = None) -> np.ndarray:
    """Hierarchical token pooling: Ward-cluster the rows into about `len / factor` groups, average each.

    Args:
        multi: A (n, d) page multi-vector.
        factor: Pooling factor; 1 returns the (normalised) rows unchanged.
        pool: Boolean mask of the rows to pool (a page's image patches); the others (the model's
            prompt tokens) are kept as they are, after the pooled rows. None pools every row.

    Returns:
        A (m, d) float32 matrix of L2-normalised rows, m = ceil(pooled / factor) + kept.
    """
    if factor < 1:
        raise MMRAGError(f"pooling factor must be at least 1, got {factor}")
    rows = _normalise(multi)
    mask = np.ones(len(rows), dtype=bool) if pool is None else np.asarray(pool, dtype=bool)
    body, kept = rows[mask], rows[~mask]
    if factor == 1 or len(body) <= 1:
        return rows
    groups = -(-len(body) // factor)
    from scipy.cluster.hierarchy import fcluster, linkage

    # Ward on unit vectors: Euclidean distance is a monotone function of cosine distance.
    labels = fcluster(linkage(body.astype(np.float64), method="ward"), t=groups, criterion="maxclust")
    pooled = np.stack([body[labels == c].mean(axis=0) for c in np.unique(labels)])
    return np.concatenate([_normalise(pooled), kept]).astype(np.float32)


def multi_bytes(multi: np.ndarray, dtype_bytes: int = 4) -> int:
    """Bytes a multi-vector takes in the store (vectors only; float32 unless `dtype_bytes` says)."""
    n, d = np.asarray(multi).shape
    return int(n * d * dtype_bytes)


__all__ = ["hierarchical_pool", "maxsim", "maxsim_rank", "mean_vector", "multi_bytes"]
