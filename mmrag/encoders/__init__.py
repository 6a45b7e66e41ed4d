"""Encoder factories: a model id (registry id, hub id or local folder) in, a loaded encoder out."""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any

from mmrag.encoders.base import ImageEncoder, ImageFeatures, TextEncoder, l2_normalize
from mmrag.missing import (
    hub_error,
    hub_offline,
    in_hub_cache,
    load_error,
    package_missing,
    require_hub_model,
)
from mmrag.registry import ModelDescription, get_model
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.encoders.colpali import PageEncoder

__all__ = [
    "ImageEncoder",
    "ImageFeatures",
    "TextEncoder",
    "aligned_image_space",
    "describe",
    "l2_normalize",
    "load_image_encoder",
    "load_page_encoder",
    "load_text_encoder",
]

# family -> module in this package holding `load(desc, device, dtype, **kw)`
_FAMILY_MODULES = {
    "clip": "clip",
    "siglip": "clip",
    "auto-dual": "clip",
    "sentence-transformers": "text",
    "efficientnet": "efficientnet",
    "colpali": "colpali",
    "colqwen2": "colpali",
    "conse": "conse",
}


def describe(model_id: str, role: str) -> ModelDescription:
    """The registry description of `model_id`, or one read from its config for unregistered models.

    Unregistered models are described from their `config.json` (`model_type`), never from the id's
    spelling: `clip`/`siglip` model types load with their classes, any other type whose transformers
    class has both `get_image_features` and `get_text_features` loads as `auto-dual` (also for the
    `text` role, so a dual encoder's text tower can embed text); any other text model is a
    sentence-transformers folder (`modules.json`) or a plain transformers encoder (mean pooling).

    Raises:
        MMRAGError: The model cannot play `role`, or its config cannot be read.
    """
    desc = get_model(model_id)
    if desc is not None:
        if role not in desc.roles:
            roles = ", ".join(desc.roles)
            raise MMRAGError(f"{model_id} cannot be used as a {role} encoder (roles: {roles})")
        return desc
    from transformers import AutoConfig

    require_hub_model(model_id)
    try:
        cfg = AutoConfig.from_pretrained(model_id, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise load_error(
            model_id, e, "not in the registry (mmrag models ls) and its config cannot be loaded"
        ) from e
    model_type = getattr(cfg, "model_type", "")
    if model_type in ("colpali", "colqwen2"):
        if role != "page":
            raise MMRAGError(f"{model_id}: a {model_type!r} model is a page encoder, not a {role} encoder")
        page_dim = int(getattr(cfg, "embedding_dim", 128))
        if model_type == "colpali":
            return ModelDescription(model_id, "colpali", ("page",), page_dim, "unknown")
        return ModelDescription(model_id, "colqwen2", ("page",), page_dim, "unknown")
    if role == "page":
        raise MMRAGError(f"{model_id}: a {model_type!r} model is not a page encoder (ColPali, ColQwen2)")
    if model_type in ("clip", "siglip") or _is_dual(cfg):
        family = model_type if model_type in ("clip", "siglip") else "auto-dual"
        text_cfg = getattr(cfg, "text_config", None)
        # CLIP-likes project both towers to `projection_dim`; SigLIP's text head keeps the hidden size.
        dim = (
            getattr(cfg, "projection_dim", None)
            or getattr(text_cfg, "projection_size", None)
            or getattr(text_cfg, "hidden_size", 0)
        )
        return ModelDescription(model_id, family, ("image", "text"), int(dim), "unknown")  # type: ignore[arg-type]
    if role == "image":
        raise MMRAGError(f"{model_id}: a {model_type!r} model is not an image encoder")
    dim = int(getattr(cfg, "hidden_size", 0))
    return ModelDescription(model_id, "sentence-transformers", ("text",), dim, "unknown")


@functools.lru_cache(maxsize=64)  # a search asks once per query; an unregistered id reads a file
def aligned_image_space(model_id: str | None) -> bool:
    """Whether the image encoder `model_id` maps text into its image space, so a text query can
    search the `image` space.

    True for dual encoders (CLIP, SigLIP, any `auto-dual` model); False for image-only towers
    (EfficientNet) and for no image encoder (None or ""). Read from the registry, or from the
    model's `config.json` for an unregistered folder or hub id (`describe`); no weights are loaded.

    Raises:
        MMRAGError: `model_id` is not an image encoder, or its config cannot be read.
    """
    if not model_id:
        return False
    return "text" in describe(model_id, "image").roles


def _is_dual(cfg: Any) -> bool:
    """True when the `AutoModel` class for `cfg` embeds both images and texts."""
    from transformers import MODEL_MAPPING

    try:
        cls = MODEL_MAPPING[type(cfg)]
    except (KeyError, ValueError):
        return False
    return hasattr(cls, "get_image_features") and hasattr(cls, "get_text_features")


def _family_module(desc: ModelDescription) -> Any:
    name = _FAMILY_MODULES.get(desc.family)
    if name is None:
        raise MMRAGError(f"{desc.id}: family {desc.family!r} is not an encoder family")
    return importlib.import_module(f"mmrag.encoders.{name}")


def _load(desc: ModelDescription, **kw: Any) -> Any:
    """Load `desc` with its family's module; a model missing here fails in one line saying what to run
    (`mmrag.missing`): the pip package that ships it, or the hub download."""
    if not desc.available():
        if desc.package and (desc.source == "package" or (hub_offline() and not in_hub_cache(desc.id))):
            raise package_missing(desc.package, desc.id)
        if desc.source == "hub":
            require_hub_model(desc.id)
    try:
        return _family_module(desc).load(desc, **kw)
    except MMRAGError as e:
        better = hub_error(desc.id, e)
        if better is None:
            raise
        raise better from e


def load_image_encoder(model_id: str, device: str = "auto", dtype: str = "auto", **kw: Any) -> ImageEncoder:
    """Load an image encoder (CLIP, SigLIP, any dual encoder, EfficientNet-Lite0)."""
    desc = describe(model_id, "image")
    enc = _load(desc, device=device, dtype=dtype, **kw)
    return enc


def load_page_encoder(model_id: str, device: str = "auto", dtype: str = "auto", **kw: Any) -> PageEncoder:
    """Load a late-interaction page encoder (ColPali, ColQwen2): pages and queries to multi-vectors."""
    desc = describe(model_id, "page")
    enc: PageEncoder = _load(desc, device=device, dtype=dtype, **kw)
    return enc


def load_text_encoder(model_id: str, device: str = "auto", dtype: str = "auto", **kw: Any) -> TextEncoder:
    """Load a text embedder (sentence-transformers or plain transformers with mean pooling)."""
    desc = describe(model_id, "text")
    enc = _load(desc, device=device, dtype=dtype, **kw)
    return enc
