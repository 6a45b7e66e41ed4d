"""`MMRAGEmbedding`: mmrag's encoders as a llama-index `MultiModalEmbedding`, one vector space per instance.

An mmrag index has up to two dense spaces: `text` (the text embedder) and `image` (the image
encoder). Each instance embeds into one of them, so every vector it returns can be compared with
every other:

- `space="text"`: texts and queries through the text embedder (queries with the model's query
  prefix where it has one); images are refused.
- `space="image"`: images through the image encoder; texts and queries through its aligned text
  tower (CLIP, SigLIP). A vision tower without one (the offline profile's EfficientNet) embeds
  images only.

For llama-index's `MultiModalVectorStoreIndex` pass both:
`embed_model=MMRAGEmbedding(emb, "text"), image_embed_model=MMRAGEmbedding(emb, "image")`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import ImageType

from mmrag.encoders import aligned_image_space
from mmrag.types import MMRAGError

from .nodes import open_image

if TYPE_CHECKING:
    import numpy as np

    from mmrag.encoders.embedders import Embedders
    from mmrag.pipeline import Pipeline

Space = Literal["text", "image"]


class MMRAGEmbedding(MultiModalEmbedding):
    """Embed text and images with the encoders of an mmrag config or index.

    Args:
        embedders: The encoders (`Pipeline.embedders`, or `mmrag.encoders.embedders.Embedders(cfg.encoders)`);
            they load on first use and are shared with every pipeline of the process.
        space: `text` or `image` (see the module docstring).
        **kwargs: llama-index `BaseEmbedding` fields (`embed_batch_size`, `callback_manager`).
    """

    space: Space = Field(default="text", description="The mmrag vector space: `text` or `image`.")
    _emb: Embedders = PrivateAttr()

    def __init__(self, embedders: Embedders, space: Space = "text", **kwargs: Any) -> None:
        if space not in ("text", "image"):
            raise MMRAGError(f"unknown space {space!r}: choose text or image")
        model_id = embedders.cfg.text if space == "text" else embedders.cfg.image
        if not model_id:
            raise MMRAGError(f"this config has no {space} encoder (encoders.{space} is None)")
        fields: dict[str, Any] = {"embed_batch_size": embedders.cfg.batch_size, **kwargs}
        super().__init__(**{**fields, "space": space, "model_name": model_id})
        self._emb = embedders

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, space: Space = "text", **kwargs: Any) -> MMRAGEmbedding:
        """The encoders of an open pipeline (the ones its index was built with)."""
        return cls(pipeline.embedders, space, **kwargs)

    @classmethod
    def from_profile(
        cls, profile: str = "default", space: Space = "text", **overrides: Any
    ) -> MMRAGEmbedding:
        """The encoders of a config profile (`"offline"`); overrides as in `MMRAGConfig.load`."""
        from mmrag.config import MMRAGConfig
        from mmrag.encoders.embedders import Embedders

        cfg = MMRAGConfig.load(profile=profile, **overrides)
        return cls(Embedders(cfg.encoders), space)

    @classmethod
    def class_name(cls) -> str:
        return "MMRAGEmbedding"

    @property
    def dim(self) -> int:
        """Vector size of this space (loads the encoder)."""
        enc = self._emb.text if self.space == "text" else self._emb.image
        assert enc is not None  # checked in __init__
        return int(enc.dim)

    # -- text ---------------------------------------------------------------------------------------
    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
        if self.space == "text":
            enc: Any = self._emb.text
        else:
            if not aligned_image_space(self._emb.cfg.image):
                raise MMRAGError(
                    f"{self.model_name} has no text tower: its image space embeds images only; "
                    'use MMRAGEmbedding(..., space="text") for text, or a CLIP/SigLIP image encoder'
                )
            enc = self._emb.image
        bs = self.embed_batch_size
        if query and hasattr(enc, "encode_queries"):
            return enc.encode_queries(texts, batch_size=bs)
        return enc.encode_text(texts, batch_size=bs)

    def _get_query_embedding(self, query: str) -> Embedding:
        return [float(x) for x in self._encode([query], query=True)[0]]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return [float(x) for x in self._encode([text], query=False)[0]]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return [[float(x) for x in row] for row in self._encode(list(texts), query=False)]

    # -- images -------------------------------------------------------------------------------------
    def _image_encoder(self) -> Any:
        if self.space != "image":
            raise MMRAGError('MMRAGEmbedding(space="text") embeds text only; use space="image" for images')
        return self._emb.image

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_image_embeddings([img_file_path])[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_image_embedding(img_file_path)

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        enc = self._image_encoder()
        images = [open_image(p) for p in img_file_paths]
        vecs = enc.encode_images(images, batch_size=self.embed_batch_size).vectors
        return [[float(x) for x in row] for row in vecs]
