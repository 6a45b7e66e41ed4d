"""Bi-encoder reranking: cosine between the query and each hit with the index's own embedders.

No new model: the text embedder reads the query (`encode_queries`, with the model's query prefix)
and the hit's text; an image, page or video hit whose picture can be read is also compared in the
image space when the image encoder has an aligned text side (CLIP, SigLIP), and the higher of its
two cosines counts. A cosine c becomes a probability-like score (c + 1) / 2; a hit with neither text
nor a comparable picture gets 0.5 (cosine 0).

Cosines of different spaces are not calibrated against each other (CLIP's text-image cosines sit
near 0.3, MiniLM's text-text ones near 0.6), and neither is calibrated as a probability: use this
method as a cheap fallback, and tune an adaptive-k threshold for it separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmrag.encoders import aligned_image_space
from mmrag.rerank.base import Reranker, passage
from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from mmrag.encoders.embedders import Embedders

IMAGE_MODALITIES = ("image", "page", "video")


def to_unit(cos: np.ndarray) -> np.ndarray:
    """Cosine in [-1, 1] to [0, 1]."""
    return np.clip((np.asarray(cos, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)


class BiEncoderReranker(Reranker):
    """Rescoring with the embedders that built the index.

    Args:
        embedders: The pipeline's `Embedders` (`Pipeline.embedders`).
        batch_size: Texts or images per encoder call.

    Raises:
        MMRAGError: The index has neither a text embedder nor an image encoder with a text side.
    """

    def __init__(self, embedders: Embedders, batch_size: int = 32) -> None:
        self.embedders = embedders
        self.batch_size = batch_size
        cfg = embedders.cfg
        if not cfg.text and not aligned_image_space(self.embedders.cfg.image):
            raise MMRAGError(
                "bi-encoder reranking needs a text embedder (encoders.text) or an image encoder with a "
                "text side (CLIP, SigLIP)"
            )
        self.name = f"bi-encoder:{cfg.text or cfg.image}"

    def score(self, query: str, hits: Sequence[Hit]) -> list[float]:
        cos = np.zeros(len(hits), dtype=np.float64)  # no evidence: cosine 0, score 0.5
        texts = [passage(h) for h in hits]
        enc = self.embedders.text
        with_text = [i for i, t in enumerate(texts) if t]
        if enc is not None and with_text:
            # through the embedders' vector cache: the same passages come back for many queries
            q = self.embedders.text_vectors([query], "text", "query")[0]
            docs = np.stack(self.embedders.text_vectors([texts[i] for i in with_text], "text"))
            cos[with_text] = docs @ q
        pictured = [i for i, h in enumerate(hits) if h.modality in IMAGE_MODALITIES]
        if pictured and aligned_image_space(self.embedders.cfg.image):
            self._image_cosines(query, hits, pictured, cos, has_text=set(with_text) if enc else set())
        return [float(p) for p in to_unit(cos)]

    def _image_cosines(
        self, query: str, hits: Sequence[Hit], pictured: list[int], cos: np.ndarray, has_text: set[int]
    ) -> None:
        """Write the image-space cosine of each readable picture into `cos` (the max with its text cosine)."""
        from mmrag.ingest.render import hit_image

        image_enc = self.embedders.image
        if image_enc is None:
            return
        pairs = [(i, hit_image(hits[i])) for i in pictured]
        readable = [(i, im) for i, im in pairs if im is not None]
        if not readable:
            return
        q = image_enc.encode_text([query], batch_size=1)[0]
        vecs = image_enc.encode_images([im for _, im in readable], batch_size=self.batch_size).vectors
        for (i, _), v in zip(readable, vecs, strict=True):
            c = float(v @ q)
            cos[i] = max(cos[i], c) if i in has_text else c
