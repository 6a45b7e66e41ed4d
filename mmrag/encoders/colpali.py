"""Late-interaction page encoders: ColPali and ColQwen2 through transformers' `*ForRetrieval` classes.

A page image becomes a matrix of patch vectors (ColPali: 1,024 patches of a 448 px render, plus the
prompt's tokens; ColQwen2: one vector per 2x2 merged 28 px patch, so about `max_pixels / 784`),
and a text query a matrix of token vectors, all 128-d and L2-normalised by the model. A page's score
for a query is MaxSim (`mmrag.store.multivector.maxsim`), computed by the store.

Only rows under the attention mask are kept: padding rows of a batch are not part of a page. Each
page also says which of its rows are image patches (the rest come from the model's prompt), so that
patch pooling (`hierarchical_pool`) merges patches only.

Example:
    >>> enc = load_page_encoder("vidore/colqwen2-v1.0-hf")  # doctest: +SKIP
    >>> pages = enc.encode_pages([page_image])             # [(n_patches, 128)]
    >>> queries = enc.encode_queries(["revenue in 2022"])  # [(n_tokens, 128)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.device import resolve_device, resolve_dtype, torch_dtype
from mmrag.registry import ModelDescription
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from PIL import Image

# transformers class per family (and per `model_type` of an unregistered folder).
CLASSES = {"colpali": "ColPaliForRetrieval", "colqwen2": "ColQwen2ForRetrieval"}
# Inputs the retrieval models take; processors also return `labels` and `token_type_ids`.
_INPUTS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw")


@dataclass
class PageVectors:
    """One page's multi-vector: (rows, dim) float32 L2-normalised, and which rows are image patches."""

    vectors: np.ndarray
    patches: np.ndarray


class PageEncoder:
    """A ColPali-family model: pages and queries to multi-vectors.

    Attributes:
        model_id: What it was loaded from.
        dim: Per-token dimension (128 for the released checkpoints).
        family: `colpali` or `colqwen2`.
    """

    def __init__(self, model: Any, processor: Any, model_id: str, family: str) -> None:
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.family = family
        self.dim = int(model.config.embedding_dim)
        self.image_token_id = int(processor.image_token_id)

    def _run(self, batch: Any) -> list[PageVectors]:
        import torch

        device = self.model.device
        dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())
        inputs = {
            k: (v.to(device, dtype) if v.is_floating_point() else v.to(device))
            for k, v in batch.items()
            if k in _INPUTS
        }
        with torch.inference_mode():
            emb = self.model(**inputs).embeddings.float().cpu().numpy()
        mask = batch["attention_mask"].bool().cpu().numpy()
        patches = (batch["input_ids"] == self.image_token_id).cpu().numpy()
        return [
            PageVectors(np.ascontiguousarray(e[m], dtype=np.float32), p[m])
            for e, m, p in zip(emb, mask, patches, strict=True)
        ]

    def encode_pages(self, images: Sequence[Image.Image], batch_size: int = 4) -> list[PageVectors]:
        """One multi-vector per page image (patch rows and the prompt's rows)."""
        out: list[PageVectors] = []
        for i in range(0, len(images), batch_size):
            rgb = [im.convert("RGB") for im in images[i : i + batch_size]]
            out.extend(self._run(self.processor.process_images(images=rgb)))
        return out

    def encode_queries(self, texts: Sequence[str], batch_size: int = 16) -> list[np.ndarray]:
        """One (tokens, dim) float32 matrix per query (the processor adds its query prefix and buffer)."""
        out: list[np.ndarray] = []
        for i in range(0, len(texts), batch_size):
            batch = self.processor.process_queries(text=list(texts[i : i + batch_size]))
            out.extend(p.vectors for p in self._run(batch))
        return out


def load(desc: ModelDescription, device: str = "auto", dtype: str = "auto", **_: Any) -> PageEncoder:
    """Load a ColPali or ColQwen2 retrieval model and its processor (the `page` family loader)."""
    import transformers

    if desc.family not in CLASSES:
        raise MMRAGError(f"{desc.id}: family {desc.family!r} is not a page encoder ({', '.join(CLASSES)})")
    device = resolve_device(device)
    weights = torch_dtype(resolve_dtype(dtype, device))
    cls = getattr(transformers, CLASSES[desc.family])
    try:
        model = cls.from_pretrained(desc.id, dtype=weights).to(device).eval()
        processor = transformers.AutoProcessor.from_pretrained(desc.id)
    except (OSError, ValueError) as e:
        raise MMRAGError(f"{desc.id}: cannot load the page encoder: {e}") from e
    return PageEncoder(model, processor, desc.id, desc.family)


__all__ = ["CLASSES", "PageEncoder", "PageVectors", "load"]
