"""BM25 sparse vectors for the `bm25` space, from qdrant-edge-py's built-in BM25 model.

The model tokenizes (Unicode word boundaries), lowercases, drops English stop words and applies the
Snowball English stemmer, then hashes each token to a sparse index. Documents get BM25
term-frequency weights (k, b and an assumed average length); queries get weight 1 per unique
token. IDF is not part of the vector: the store computes it from its own document frequencies
(`Modifier.IDF`), so the weights stay valid as the collection grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmrag.types import MMRAGError, SparseVec


class Bm25Encoder:
    """Text to BM25 sparse vectors (qdrant-edge-py `Bm25`).

    Args:
        language: Stop words and stemmer language (`english`, `french`, ...).
        k: Term-frequency saturation.
        b: Length normalisation (0: none, 1: full).
        avg_len: Assumed average document length in tokens.

    Example:
        >>> enc = Bm25Encoder()
        >>> enc.embed_query("running dogs").indices == enc.embed_query("the dog runs").indices
        True
    """

    model_id = "qdrant/bm25"

    def __init__(self, language: str = "english", k: float = 1.2, b: float = 0.75, avg_len: float = 256.0):
        try:
            import qdrant_edge
        except ImportError as e:  # pragma: no cover - a core dependency
            raise MMRAGError("BM25 needs qdrant-edge-py: pip install 'qdrant-edge-py>=0.9,<0.10'") from e
        self.language = language
        config = qdrant_edge.Bm25Config(k=k, b=b, avg_len=avg_len, language=language)
        try:
            self._model: Any = qdrant_edge.Bm25(config)
        except ValueError as e:
            raise MMRAGError(f"BM25 configuration rejected: {e}") from e

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVec]:
        """One TF-weighted sparse vector per text (empty for text made only of stop words)."""
        out = []
        for text in texts:
            v = self._model.embed_document(text or "")
            out.append(SparseVec(list(v.indices), list(v.values)))
        return out

    def embed_query(self, text: str) -> SparseVec:
        """The query's unique tokens, each with weight 1."""
        v = self._model.embed_query(text or "")
        return SparseVec(list(v.indices), list(v.values))
