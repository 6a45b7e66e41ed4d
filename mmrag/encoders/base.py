"""Encoder interfaces. Every encoder returns float32 arrays of L2-normalised rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

Pixels = dict[str, "torch.Tensor"]
"""Model-ready image inputs (`pixel_values`, and whatever else the tower takes), one row per image."""


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation in float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


@dataclass
class ImageFeatures:
    """Output of an image encoder: one normalised vector per image, and optional labels.

    `tags` carries class labels when the tower has a classifier head (EfficientNet's ImageNet
    head in the offline profile); they go into the image's text so text queries reach it.
    """

    vectors: np.ndarray
    tags: list[list[str]] | None = None


@runtime_checkable
class TextEncoder(Protocol):
    """Embeds text into a dense space."""

    model_id: str
    dim: int

    def encode_text(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised."""
        ...


@runtime_checkable
class ImageEncoder(Protocol):
    """Embeds images into a dense space.

    `aligned_text` is True for dual encoders (CLIP, SigLIP) whose `encode_text` maps text into the
    same space as the images; a vision tower alone (EfficientNet) has no text side.
    """

    model_id: str
    dim: int
    aligned_text: bool

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> ImageFeatures:
        """One vector per image (and tags where the model has a classifier head)."""
        ...

    def encode_text(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Text in the image space; raises NotImplementedError when `aligned_text` is False."""
        ...


@runtime_checkable
class PixelEncoder(Protocol):
    """An image encoder whose preprocessing is separate from its forward pass.

    `preprocess` is CPU work that is safe to run in worker threads (decode-side resizing and
    normalisation into tensors); `encode_pixels` runs the tower. `encode_images(images)` equals
    `encode_pixels(preprocess(images))`, so an indexer can prepare the next batch while the
    current one is encoded.
    """

    def preprocess(self, images: Sequence[Image.Image]) -> Pixels:
        """Model-ready CPU tensors for `images`, one row per image."""
        ...

    def encode_pixels(self, pixels: Pixels, batch_size: int = 32) -> ImageFeatures:
        """One vector per row of `pixels` (and tags where the model has a classifier head)."""
        ...


def concat_pixels(parts: Sequence[Pixels]) -> Pixels:
    """Rows of several `preprocess` outputs as one batch (same keys in every part)."""
    import torch

    if len(parts) == 1:
        return dict(parts[0])
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def pixel_rows(pixels: Pixels) -> int:
    """Images in a `preprocess` output."""
    return int(next(iter(pixels.values())).shape[0]) if pixels else 0


def slice_pixels(pixels: Pixels, start: int, stop: int) -> Pixels:
    """Rows `start:stop` of a `preprocess` output."""
    return {k: v[start:stop] for k, v in pixels.items()}
