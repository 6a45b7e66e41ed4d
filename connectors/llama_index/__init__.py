"""llama-index adapters: mmrag's search, encoders, rerankers, generators and readers as llama-index parts.

    from mmrag import Pipeline
    from mmrag.connectors.llama_index import MMRAGLLM, MMRAGRetriever
    from llama_index.core.query_engine import RetrieverQueryEngine

    p = Pipeline.load("./idx")
    engine = RetrieverQueryEngine.from_args(
        MMRAGRetriever(p, k=5), llm=MMRAGLLM.from_pipeline(p), multimodal=True
    )
    print(engine.query("What did the speaker whisk?"))

Every class returns llama-index types (`NodeWithScore`, `TextNode`, `ImageNode`, `Document`,
`ImageDocument`, `CompletionResponse`, ...). Provenance (path, page, clip times, locator, point id,
fused score) travels in node metadata. Importing this package needs llama-index-core
(`pip install -e ".[llamaindex]"`); `import mmrag` alone never imports llama-index.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmrag.types import MMRAGError

try:
    import llama_index.core  # noqa: F401
except ImportError as e:
    raise MMRAGError(
        "the llama-index connectors need llama-index-core: "
        'pip install -e ".[llamaindex]" (or pip install llama-index-core)'
    ) from e

if TYPE_CHECKING:
    from .embedding import MMRAGEmbedding as MMRAGEmbedding
    from .llm import MMRAGLLM as MMRAGLLM
    from .nodes import MMRAGImageNode as MMRAGImageNode
    from .nodes import hit_to_node as hit_to_node
    from .nodes import node_to_hit as node_to_hit
    from .readers import AudioTranscriptReader as AudioTranscriptReader
    from .readers import PDFPageImageReader as PDFPageImageReader
    from .readers import VideoClipReader as VideoClipReader
    from .rerank import MMRAGReranker as MMRAGReranker
    from .retriever import MMRAGRetriever as MMRAGRetriever

_LAZY = {
    "MMRAGEmbedding": "embedding",
    "MMRAGLLM": "llm",
    "MMRAGImageNode": "nodes",
    "hit_to_node": "nodes",
    "node_to_hit": "nodes",
    "PDFPageImageReader": "readers",
    "VideoClipReader": "readers",
    "AudioTranscriptReader": "readers",
    "MMRAGReranker": "rerank",
    "MMRAGRetriever": "retriever",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    # Each adapter loads its own slice of llama-index (and of mmrag) only when first used.
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
