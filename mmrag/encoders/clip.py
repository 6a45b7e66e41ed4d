"""Dual encoders (CLIP, SigLIP, any transformers model with `get_image_features`/`get_text_features`).

Images and texts map into one space, so a text query reaches images directly. Vectors are the
projected embeddings, L2-normalised here (transformers 5 returns them unnormalised, as the
`.pooler_output` of an output object). SigLIP is trained with a sigmoid loss: its text side expects
`padding="max_length"`, and a pair's probability is `sigmoid(logit_scale * cos + logit_bias)`,
which `DualEncoder.score` computes for a reranker.

Example:
    >>> enc = load_image_encoder("openai/clip-vit-base-patch32")  # doctest: +SKIP
    >>> enc.score(enc.encode_text(["a cat"]), enc.encode_images([img]).vectors)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.device import resolve_device, resolve_dtype, torch_dtype
from mmrag.encoders.base import ImageFeatures, Pixels, l2_normalize, pixel_rows, slice_pixels
from mmrag.registry import ModelDescription, get_model
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    import torch
    from PIL import Image

# Model types trained with every text padded to the full length; shorter padding changes their vectors.
_PAD_TO_MAX_LENGTH = frozenset({"siglip", "siglip2"})


def _model_class(family: str) -> Any:
    import transformers

    classes = {"clip": "CLIPModel", "siglip": "SiglipModel", "auto-dual": "AutoModel"}
    if family not in classes:
        raise MMRAGError(f"family {family!r} is not a dual-encoder family ({', '.join(classes)})")
    return getattr(transformers, classes[family])


def _accepted(fn: Callable[..., Any]) -> frozenset[str]:
    """Named parameters of `fn`: processors return keys (token_type_ids) that some towers refuse."""
    params = inspect.signature(fn).parameters.values()
    return frozenset(p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))


def _embeddings(out: Any, which: str) -> torch.Tensor:
    """The projected embedding from a tensor (transformers 4) or an output object (transformers 5)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    for name in ("pooler_output", f"{which}_embeds"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise MMRAGError(f"get_{which}_features returned {type(out).__name__} without a pooled embedding")


def _load_model(desc: ModelDescription, dtype: str, use_safetensors: bool, revision: str | None) -> Any:
    """(model, processor) from the hub id or local folder; never runs code shipped with the model."""
    from transformers import AutoProcessor

    source = str(desc.local_path()) if desc.available() else desc.id
    try:
        model = _model_class(desc.family).from_pretrained(
            source,
            dtype=torch_dtype(dtype),
            use_safetensors=use_safetensors,
            revision=revision,
            trust_remote_code=False,
        )
        processor = AutoProcessor.from_pretrained(source, revision=revision, trust_remote_code=False)
    except (OSError, ValueError, ImportError) as e:
        hint = (
            " (pass use_safetensors=False to allow .bin weights from a trusted source)"
            if use_safetensors and "safetensors" in str(e)
            else ""
        )
        raise MMRAGError(f"{desc.id}: cannot load the dual encoder{hint}: {e}") from e
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        name = type(model).__name__
        raise MMRAGError(f"{desc.id}: {name} has no get_image_features/get_text_features")
    return model, processor


class DualEncoder:
    """Image and text encoder over one transformers dual-encoder model.

    Attributes:
        model_id: The description's id (hub id or local folder).
        dim: Embedding size, measured from the model.
        logit_scale: The model's learned temperature, exponentiated (1.0 when it has none).
        logit_bias: SigLIP's learned bias (0.0 for softmax-trained models).
        sigmoid_scores: True when the model was trained with a sigmoid loss (has a `logit_bias`).
    """

    aligned_text = True

    def __init__(
        self,
        desc: ModelDescription,
        device: str = "auto",
        dtype: str = "auto",
        use_safetensors: bool = True,
        revision: str | None = None,
    ) -> None:
        """Load the model and its processor.

        Args:
            desc: Model description (family `clip`, `siglip` or `auto-dual`).
            device: `auto`, `cpu`, `cuda`, `cuda:1`, ...
            dtype: `auto` (bf16/fp16 on CUDA, fp32 on CPU), `float32`, `float16`, `bfloat16`.
            use_safetensors: Refuse pickled (`.bin`) weights; pass False only for a source you trust.
            revision: Hub revision (branch, tag or commit) to pin.

        Raises:
            MMRAGError: The weights or processor cannot be loaded, or the model is not a dual encoder.
        """
        self.model_id = desc.id
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model, processor = _load_model(desc, self.dtype, use_safetensors, revision)
        self.model.eval().to(self.device)
        self.tokenizer = processor.tokenizer
        self.image_processor = processor.image_processor
        self._text_keys = _accepted(self.model.get_text_features)
        self._image_keys = _accepted(self.model.get_image_features)
        model_type = getattr(self.model.config, "model_type", "")
        self.padding: str = "max_length" if model_type in _PAD_TO_MAX_LENGTH else "longest"
        text_cfg = getattr(self.model.config, "text_config", self.model.config)
        self.max_text_length = min(
            int(self.tokenizer.model_max_length), int(getattr(text_cfg, "max_position_embeddings", 10**6))
        )
        scale, bias = getattr(self.model, "logit_scale", None), getattr(self.model, "logit_bias", None)
        # CLIP and SigLIP store the log of the temperature.
        self.logit_scale = math.exp(float(scale.detach())) if scale is not None else 1.0
        self.logit_bias = float(bias.detach()) if bias is not None else 0.0
        self.sigmoid_scores = bias is not None
        self.dim = 0
        self.dim = int(self.encode_text(["a"]).shape[1])
        if get_model(desc.id) is not None and desc.dim and desc.dim != self.dim:
            raise MMRAGError(f"{desc.id}: the registry says {desc.dim}-d, the loaded model gives {self.dim}")

    def _inputs(self, batch: Any, keys: frozenset[str]) -> dict[str, torch.Tensor]:
        """Processor output moved to the device; float tensors (pixels) in the model's dtype."""
        out = {}
        for k, v in batch.items():
            if k not in keys:
                continue
            v = v.to(self.device)
            out[k] = v.to(self.model.dtype) if v.is_floating_point() else v
        return out

    def preprocess(self, images: Sequence[Image.Image]) -> Pixels:
        """The image processor's tensors for `images` (CPU, floats in the model's dtype).

        Safe to call from worker threads while another thread runs `encode_pixels`.
        """
        import torch

        rgb = [im.convert("RGB") for im in images]
        batch = self.image_processor(images=rgb, return_tensors="pt")
        out: Pixels = {}
        for k, v in batch.items():
            if k not in self._image_keys or not isinstance(v, torch.Tensor):
                continue
            out[k] = v.to(self.model.dtype) if v.is_floating_point() else v
        return out

    def encode_pixels(self, pixels: Pixels, batch_size: int = 32) -> ImageFeatures:
        """One L2-normalised vector per row of a `preprocess` output, `batch_size` rows a pass."""
        import torch

        vecs: list[np.ndarray] = []
        for i in range(0, pixel_rows(pixels), batch_size):
            part = slice_pixels(pixels, i, i + batch_size)
            inputs = {k: v.to(self.device) for k, v in part.items()}
            with torch.inference_mode():
                out = self.model.get_image_features(**inputs)
            vecs.append(_embeddings(out, "image").float().cpu().numpy())
        return ImageFeatures(vectors=self._stack(vecs))

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> ImageFeatures:
        """One L2-normalised vector per image (no tags: a dual encoder has no classifier head)."""
        vecs: list[np.ndarray] = []
        for i in range(0, len(images), batch_size):
            pixels = self.preprocess(images[i : i + batch_size])
            vecs.append(self.encode_pixels(pixels, batch_size).vectors)
        return ImageFeatures(vectors=np.concatenate(vecs) if vecs else np.zeros((0, self.dim), np.float32))

    def encode_text(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Texts in the image space, L2-normalised, truncated to the text tower's length."""
        import torch

        vecs: list[np.ndarray] = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[i : i + batch_size]),
                padding=self.padding,
                truncation=True,
                max_length=self.max_text_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                out = self.model.get_text_features(**self._inputs(batch, self._text_keys))
            vecs.append(_embeddings(out, "text").float().cpu().numpy())
        return self._stack(vecs)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Same as `encode_text`: dual encoders use no query prefix."""
        return self.encode_text(texts, batch_size)

    def _stack(self, vecs: list[np.ndarray]) -> np.ndarray:
        return l2_normalize(np.concatenate(vecs)) if vecs else np.zeros((0, self.dim), np.float32)

    def score(self, text_vecs: np.ndarray, image_vecs: np.ndarray) -> np.ndarray:
        """Pair scores, (n_texts, n_images), from normalised vectors as this class returns them.

        SigLIP-style models: the sigmoid probability `sigmoid(logit_scale * cos + logit_bias)`, each
        pair on its own. Softmax-trained models (CLIP): the logits `logit_scale * cos`, comparable
        within one query's candidates (softmax them over the candidates for probabilities).
        """
        logits = self.logit_scale * (np.asarray(text_vecs, np.float32) @ np.asarray(image_vecs, np.float32).T)
        logits = logits + self.logit_bias
        if self.sigmoid_scores:
            return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        return logits.astype(np.float32)


def load(desc: ModelDescription, device: str = "auto", dtype: str = "auto", **kw: Any) -> DualEncoder:
    """Family loader used by `mmrag.encoders.load_image_encoder` (and `load_text_encoder`).

    Keyword options: `use_safetensors` (default True), `revision`.
    """
    return DualEncoder(
        desc,
        device=device,
        dtype=dtype,
        use_safetensors=kw.get("use_safetensors", True),
        revision=kw.get("revision"),
    )
