"""Answer generation: text LLMs, the projector bridge, Hugging Face VLMs, projector training.

Names are imported lazily: `import mmrag.generate` loads neither torch nor transformers.

    from mmrag.generate import BridgeModel, TextGenerator
    bridge = BridgeModel.load("~/.cache/mmrag/bridges/efficientnet-smollm2")
    bridge.generate("what color is the shape?", [image])
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BridgeConfig": "mmrag.generate.bridge",
    "BridgeModel": "mmrag.generate.bridge",
    "Projector": "mmrag.generate.bridge",
    "TextGenerator": "mmrag.generate.llm",
    "load_causal_lm": "mmrag.generate.llm",
    "convert_gguf_to_hf": "mmrag.generate.llm",
    "cache_dir": "mmrag.generate.llm",
    "TrainConfig": "mmrag.train.projector",
    "train_projector": "mmrag.train.projector",
    "VLMGenerator": "mmrag.generate.vlm",
}

__all__ = sorted([*_EXPORTS, "is_bridge"])


def is_bridge(backend: Any) -> bool:
    """True for a loaded projector bridge (`BridgeModel`: vision tower, projector, causal LM).

    Read from what the object has rather than `isinstance`, so that callers (rerankers, video QA,
    memory accounting) can tell a bridge from a `VLMGenerator` or a `TextGenerator` without importing
    torch. The one place that says what a bridge looks like.
    """
    return hasattr(backend, "projector") and hasattr(backend, "chat_parts")


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmrag.generate' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
