"""Vision towers for the projector bridge: pixels -> features (N, T, D), frozen.

`EfficientNetTower` wraps the packaged EfficientNet-Lite0; `HFVisionTower` any transformers vision
model (CLIP, SigLIP, ...). Both give one pooled vector per image (T = 1) or a square grid of
`n_visual_tokens` average-pooled patch features, as `BridgeConfig.vision_feature` says.

The towers read their settings through `TowerConfig` (the fields of `BridgeConfig` they use), so
this module does not import the bridge that imports it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
from torch import nn

from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from PIL import Image


class TowerConfig(Protocol):
    """What a tower reads of a bridge's config (`mmrag.generate.bridge.BridgeConfig` has these fields)."""

    @property
    def vision(self) -> str:
        """`efficientnet-lite0` or a transformers CLIP/SigLIP model id or folder."""

    @property
    def vision_feature(self) -> str:
        """`pooled` (one vector per image) or `grid` (a square grid of patch features)."""

    @property
    def vision_layer(self) -> int:
        """Hidden-state layer read for `grid` features of a transformers tower."""

    @property
    def n_visual_tokens(self) -> int:
        """Tokens per image of a `grid` feature."""


def _grid_tokens(fmap: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """(N, D, h, w) -> (N, n_tokens, D) by average pooling to a square grid."""
    side = math.isqrt(n_tokens)
    return nn.functional.adaptive_avg_pool2d(fmap, side).flatten(2).transpose(1, 2)


class EfficientNetTower(nn.Module):
    """The packaged EfficientNet-Lite0: pooled 1280-d feature or its 7x7 map."""

    def __init__(self, config: TowerConfig, device: str = "cpu") -> None:
        super().__init__()
        from mmrag.encoders.efficientnet import load_efficientnet_lite0

        # channels_last: depthwise convolutions run about twice as fast on CPU in this layout.
        self.model = cast(Any, load_efficientnet_lite0(device=device))
        self.model.to(memory_format=torch.channels_last)
        self.feature = config.vision_feature
        self.n_tokens = config.n_visual_tokens
        self.dim = 1280

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        from mmrag.encoders.efficientnet import preprocess

        return preprocess(images)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        fmap = self.model.extract_features(
            pixels.contiguous(memory_format=torch.channels_last)
        )  # (N,1280,7,7)
        if self.feature == "pooled":
            return fmap.mean(dim=(2, 3))[:, None]
        return _grid_tokens(fmap, self.n_tokens)


class HFVisionTower(nn.Module):
    """Any transformers vision model (CLIP, SigLIP, ...): pooled output or a layer's patch tokens."""

    def __init__(self, model: nn.Module, processor: Any, config: TowerConfig) -> None:
        super().__init__()
        self.model: Any = model
        self.processor = processor
        self.feature = config.vision_feature
        self.layer = config.vision_layer
        self.n_tokens = config.n_visual_tokens
        self.dim = int(cast(Any, model).config.hidden_size)

    @classmethod
    def from_pretrained(cls, config: TowerConfig, device: str = "cpu", dtype: Any = None) -> HFVisionTower:
        from transformers import AutoImageProcessor, AutoModel

        try:
            model = AutoModel.from_pretrained(config.vision, dtype=dtype)
            processor = AutoImageProcessor.from_pretrained(config.vision)
        except (OSError, ValueError) as e:
            raise MMRAGError(f"{config.vision}: cannot load vision tower: {e}") from e
        # A dual encoder (CLIPModel, SiglipModel) keeps its image side in `.vision_model`.
        model = getattr(model, "vision_model", model)
        return cls(model.to(device).eval(), processor, config)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        rgb = [im.convert("RGB") for im in images]
        return self.processor(images=rgb, return_tensors="pt")["pixel_values"]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        if self.feature == "pooled":
            return out.pooler_output[:, None]
        hidden = out.hidden_states[self.layer]  # (N, [CLS] + P, D)
        side = math.isqrt(hidden.shape[1])
        if side * side != hidden.shape[1]:
            hidden = hidden[:, 1:]  # drop CLIP's class token; SigLIP has none
            side = math.isqrt(hidden.shape[1])
        fmap = hidden.transpose(1, 2).reshape(hidden.shape[0], hidden.shape[2], side, side)
        return _grid_tokens(fmap, self.n_tokens)


def load_vision_tower(config: TowerConfig, device: str = "cpu") -> nn.Module:
    """The tower named by `config.vision`, frozen and in eval mode."""
    tower = (
        EfficientNetTower(config, device)
        if config.vision == "efficientnet-lite0"
        else (HFVisionTower.from_pretrained(config, device))
    )
    return tower.eval().requires_grad_(False)
