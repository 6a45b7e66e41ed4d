"""`MMRAGRetriever`: mmrag's hybrid search (dense spaces + BM25, fused) as a llama-index retriever."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from .nodes import ImageMode, hit_to_node

if TYPE_CHECKING:
    from llama_index.core.callbacks import CallbackManager

    from mmrag.pipeline import Pipeline


class MMRAGRetriever(BaseRetriever):
    """Retrieve nodes from an mmrag index with `Pipeline.search`.

    Text and audio (transcribed speech) hits come back as `TextNode`s, image/page/video hits as
    `ImageNode`s holding the photo,
    the rendered page or the clip's keyframe; each node's metadata carries `path`, `file_name`,
    `modality`, `page` (zero-based) and `page_label` (one-based), `t_start`/`t_end`, `locator`
    (`p.3`, `00:00:05–00:00:10`), `point_id` and the fused `score`. A `QueryBundle` with an
    `image_path` searches by that image too.

    Example:
        >>> retriever = MMRAGRetriever(Pipeline.load("./idx"), k=5, modality="page")  # doctest: +SKIP
        >>> nodes = retriever.retrieve("special dividend")                            # doctest: +SKIP

    Args:
        pipeline: An open pipeline (the caller closes it; `from_index` makes one the retriever owns).
        k: Nodes per query (default `pipeline.config.search.k`).
        modality: Keep only these modalities (`image`, `page`, `video`, `text`, `audio`).
        path: Glob over indexed file paths (`*.pdf`).
        pages: One-based page range (`3-5`).
        time: Clip time range in seconds (`10-60`).
        route: `filter` or `boost` to route by the documents, sources and days a question names, `off`.
        group: `chunk`, `page` or `document-page` hit units.
        images: How image-like hits carry their picture: `auto`, `base64` or `none` (see `hit_to_node`).
        image_px: Longest side of inline pictures.
        callback_manager: llama-index callbacks.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        k: int | None = None,
        modality: str | list[str] | None = None,
        path: str | None = None,
        pages: str | None = None,
        time: str | None = None,
        route: str | None = None,
        group: str | None = None,
        images: ImageMode = "auto",
        image_px: int = 768,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.pipeline = pipeline
        self.k = k
        self.filters: dict[str, Any] = {"modality": modality, "path": path, "pages": pages, "time": time}
        # question-aware routing and hit units, as `mmrag search --route/--group` (None: the index's config)
        self.filters |= {k: v for k, v in (("route", route), ("group", group)) if v is not None}
        self.images: ImageMode = images
        self.image_px = image_px
        self._owned = False

    @classmethod
    def from_index(cls, index: str | Path, **kwargs: Any) -> MMRAGRetriever:
        """Open an index folder (with the encoders that built it); `close()` releases it."""
        from mmrag.pipeline import Pipeline

        retriever = cls(Pipeline.load(index), **kwargs)
        retriever._owned = True
        return retriever

    def close(self) -> None:
        """Close the pipeline if this retriever opened it."""
        if self._owned:
            self.pipeline.close()

    def __enter__(self) -> MMRAGRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.pipeline.search(
            query_bundle.query_str or None, image=query_bundle.image_path, k=self.k, **self.filters
        )
        return [hit_to_node(h, self.images, self.image_px) for h in hits]
