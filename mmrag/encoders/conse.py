"""ConSE: text-aligned image vectors from an ImageNet classifier and a text embedder, without training.

Convex combination of semantic embeddings (Norouzi et al., ICLR 2014): an image's vector is

    v(x) = sum_{t <= T} p(y_t | x) * s(y_t) / sum_{t <= T} p(y_t | x)

where y_1..y_T are the classifier's T most probable ImageNet classes and s(y) the text embedding
of a class name. Here the classifier is the packaged EfficientNet-Lite0 and s is MiniLM, so images
land in MiniLM's text space and a text query (embedded by MiniLM) searches the `image` space
directly. T = 10, the paper's choice, not tuned on our evaluation sets.

What it can and cannot do: an image is only as describable as its top ImageNet classes, so it
reaches queries about objects ImageNet names ("a cat", "a cup of coffee") and nothing about text,
scenes or attributes outside those 1,000 classes. `evals/clip8.py` compares it with the tag
baseline (the same labels as text); README gives the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.encoders.base import ImageFeatures, Pixels, l2_normalize, pixel_rows
from mmrag.registry import ModelDescription, get_model

if TYPE_CHECKING:
    from PIL import Image

TOP_T = 10
"""Classes combined per image (the paper's T)."""
TOWER = "efficientnet-lite0"
TEXT = "sentence-transformers/all-MiniLM-L6-v2"
# class-name embeddings per (text model, device): 1,000 MiniLM passes, a few seconds on CPU
_CLASS_VECTORS: dict[tuple[str, str], np.ndarray] = {}


def class_vectors(text: Any, labels: Sequence[str], device: str) -> np.ndarray:
    """(1000, dim) L2-normalised text embeddings of the ImageNet class names, computed once."""
    key = (text.model_id, device)
    if key not in _CLASS_VECTORS:
        _CLASS_VECTORS[key] = l2_normalize(text.encode_text(list(labels), batch_size=64))
    return _CLASS_VECTORS[key]


def conse_vectors(probs: np.ndarray, semantic: np.ndarray, top_t: int = TOP_T) -> np.ndarray:
    """ConSE: each row of `probs` (N, C) -> the normalised convex combination of its top-`top_t` rows
    of `semantic` (C, D), weighted by their probabilities."""
    top = np.argsort(-probs, axis=1)[:, :top_t]
    weights = np.take_along_axis(probs, top, axis=1)
    weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    mixed = np.einsum("nt,ntd->nd", weights, semantic[top])
    return l2_normalize(mixed)


class ConseEncoder:
    """EfficientNet-Lite0 probabilities mixed into MiniLM's space: an image encoder with a text side."""

    aligned_text = True

    def __init__(self, desc: ModelDescription, device: str = "auto", n_tags: int = 3, **_: Any) -> None:
        from mmrag.encoders import load_text_encoder
        from mmrag.encoders.efficientnet import EfficientNetEncoder, imagenet_labels

        tower = get_model(TOWER)
        assert tower is not None
        self.model_id = desc.id
        self.tower = EfficientNetEncoder(tower, device=device, n_tags=n_tags)
        self.text = load_text_encoder(TEXT, device=device, dtype="float32")
        self.dim = int(self.text.dim)
        self.n_tags = n_tags
        self.labels = imagenet_labels()
        self.semantic = class_vectors(self.text, self.labels, self.tower.device)

    def preprocess(self, images: Sequence[Image.Image]) -> Pixels:
        """The tower's preprocessing (CPU, safe in worker threads)."""
        return self.tower.preprocess(images)

    def encode_pixels(self, pixels: Pixels, batch_size: int = 32) -> ImageFeatures:
        """ConSE vectors (and the top labels as tags) of each row of a `preprocess` output."""
        import torch

        vecs: list[np.ndarray] = []
        tags: list[list[str]] = []
        for i in range(0, pixel_rows(pixels), batch_size):
            with torch.inference_mode():
                fmap = self.tower.feature_map(pixels["pixel_values"][i : i + batch_size])
                probs = self.tower.model._fc(fmap.mean(dim=(2, 3))).softmax(-1).float().cpu().numpy()
            vecs.append(conse_vectors(probs, self.semantic))
            if self.n_tags:
                tags.extend([self.labels[j] for j in row] for row in np.argsort(-probs, 1)[:, : self.n_tags])
        vectors = np.concatenate(vecs) if vecs else np.zeros((0, self.dim), np.float32)
        return ImageFeatures(vectors, tags if self.n_tags else None)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> ImageFeatures:
        """ConSE vectors of the images, `batch_size` a pass."""
        return self.encode_pixels(self.preprocess(images), batch_size)

    def encode_text(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Text in the same space: MiniLM's embeddings."""
        return np.asarray(self.text.encode_text(texts, batch_size=batch_size))


def load(desc: ModelDescription, device: str = "auto", dtype: str = "auto", **kw: Any) -> ConseEncoder:
    """Family loader used by `mmrag.encoders.load_image_encoder`."""
    return ConseEncoder(desc, device=device, n_tags=kw.get("n_tags", 3))


__all__ = ["TOP_T", "ConseEncoder", "class_vectors", "conse_vectors", "load"]
