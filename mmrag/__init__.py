"""mmrag: retrieval-augmented multimodal LLMs.

The public surface is small: `Pipeline`, its config `MMRAGConfig`, the result types `Hit` and
`IndexReport`, and `list_models`. Nothing heavy is imported until it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Hit", "IndexReport", "MMRAGConfig", "MMRAGError", "Pipeline", "list_models", "__version__"]

if TYPE_CHECKING:
    from mmrag.config import MMRAGConfig
    from mmrag.pipeline import Pipeline
    from mmrag.registry import list_models
    from mmrag.types import Hit, IndexReport, MMRAGError

_LAZY = {
    "Pipeline": "mmrag.pipeline",
    "MMRAGConfig": "mmrag.config",
    "list_models": "mmrag.registry",
    "Hit": "mmrag.types",
    "IndexReport": "mmrag.types",
    "MMRAGError": "mmrag.types",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmrag' has no attribute {name!r}")
