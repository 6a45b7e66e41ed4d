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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmrag.generate' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
