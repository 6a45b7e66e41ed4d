"""`MMRAGReranker`: mmrag's second-stage rerankers as a llama-index node postprocessor.

Nodes become `Hit`s through their metadata (`node_to_hit`); `mmrag.rerank.rerank` scores the first
`rerank.candidates` of them, reorders them and cuts the list (at `top_n`, or where adaptive k says
when `rerank.adaptive_k` is on). The kept nodes come back in the new order, each scored with the
reranker's relevance probability in [0, 1]; the fused retrieval score stays in the node's `score`
metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from mmrag.types import MMRAGError

from .nodes import node_to_hit

if TYPE_CHECKING:
    from pathlib import Path

    from mmrag.config import GenerateConfig, RerankConfig
    from mmrag.encoders.embedders import Embedders
    from mmrag.pipeline import Pipeline
    from mmrag.rerank import Reranker


class MMRAGReranker(BaseNodePostprocessor):
    """Rerank retrieved nodes with an mmrag `Reranker` (cross-encoder, LLM, VLM or bi-encoder).

    Example:
        >>> post = MMRAGReranker.from_pipeline(p, method="cross-encoder", top_n=5)   # doctest: +SKIP
        >>> engine = RetrieverQueryEngine.from_args(retriever, llm=llm, node_postprocessors=[post])

    Args:
        reranker: A reranker from `mmrag.rerank.make_reranker`.
        cfg: The rerank settings (`candidates`, adaptive k); default `RerankConfig()`.
        top_n: Nodes kept; None keeps every scored candidate (or what adaptive k chooses).
    """

    top_n: int | None = Field(default=None, description="Nodes kept after reranking; None: all candidates.")
    _reranker: Reranker = PrivateAttr()
    _cfg: RerankConfig = PrivateAttr()

    def __init__(
        self, reranker: Reranker, cfg: RerankConfig | None = None, top_n: int | None = None, **kwargs: Any
    ) -> None:
        from mmrag.config import RerankConfig

        fields: dict[str, Any] = {"top_n": top_n, **kwargs}
        super().__init__(**fields)
        self._reranker = reranker
        self._cfg = cfg or RerankConfig()

    @classmethod
    def from_config(
        cls,
        cfg: RerankConfig,
        generate: GenerateConfig | None = None,
        embedders: Embedders | None = None,
        top_n: int | None = None,
        prompt_dir: str | Path | None = None,
    ) -> MMRAGReranker:
        """Build the reranker a `RerankConfig` names (see `mmrag.rerank.make_reranker`).

        Args:
            cfg: The rerank settings.
            generate: Device, 4-bit setting and default model of the `llm`/`vlm` rerankers.
            embedders: The index's embedders (`bi-encoder` needs them).
            top_n: Nodes kept; None keeps all scored candidates (or what adaptive k chooses).
            prompt_dir: Folder of templates overriding the packaged reranker prompts.

        Raises:
            MMRAGError: `cfg.method` is `none`, or the reranker cannot be built.
        """
        from mmrag.rerank import make_reranker

        reranker = make_reranker(cfg, generate, embedders, prompt_dir)
        if reranker is None:
            raise MMRAGError('rerank method is "none": choose cross-encoder, llm, vlm or bi-encoder')
        return cls(reranker, cfg, top_n)

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, top_n: int | None = None, **overrides: Any) -> MMRAGReranker:
        """The pipeline's `rerank` settings, with field overrides (`method="llm"`, `candidates=20`)."""
        import dataclasses

        cfg = dataclasses.replace(pipeline.config.rerank, **overrides)
        return cls.from_config(cfg, pipeline.config.generate, pipeline.embedders, top_n)

    @classmethod
    def class_name(cls) -> str:
        return "MMRAGReranker"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise MMRAGError("MMRAGReranker needs the query: pass query_bundle or query_str")
        if not nodes:
            return []
        from mmrag.rerank import rerank

        hits = [node_to_hit(n) for n in nodes]
        by_id: dict[str, NodeWithScore] = {}
        for h, n in zip(hits, nodes, strict=True):
            by_id.setdefault(h.id, n)
        k = self.top_n or len(hits)
        result = rerank(self._reranker, query_bundle.query_str, hits, self._cfg, k)
        # The kept hits carry the reranker's probability as their score.
        return [NodeWithScore(node=by_id[h.id].node, score=h.score) for h in result.hits]
