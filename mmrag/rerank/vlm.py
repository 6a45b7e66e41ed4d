"""Pointwise VLM reranking: the LLM reranker's yes/no scoring, with the hit's picture in the prompt.

Image, page and video hits are shown to the model as pictures (`mmrag.ingest.render.hit_image`: the photo,
the rendered page, the clip's first keyframe) with their text under the `rerank.vlm` template; text
hits, and hits whose file can no longer be read, are scored by the same model without an image under
the plain `rerank` template. Two backends read images: a transformers VLM (`AutoProcessor` + model,
prompts through `processor.apply_chat_template`) and the projector bridge (`mmrag.generate.bridge`);
their scorers are in `mmrag.rerank.scoring`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmrag.rerank.llm import LLMReranker
from mmrag.rerank.scoring import vlm_scorer
from mmrag.types import Hit, MMRAGError

IMAGE_MODALITIES = ("image", "page", "video")


class VLMReranker(LLMReranker):
    """Yes/no reranking that shows the model each image-like hit's picture (template `rerank.vlm`)."""

    def score(self, query: str, hits: Sequence[Hit]) -> list[float]:
        from mmrag.ingest.render import hit_image

        images = [hit_image(h) if h.modality in IMAGE_MODALITIES else None for h in hits]
        out = [0.0] * len(hits)
        plain = [i for i, im in enumerate(images) if im is None]
        pictured = [i for i, im in enumerate(images) if im is not None]
        if plain:
            scores = self.score_prompts([self.prompt(query, hits[i]) for i in plain])
            for i, p in zip(plain, scores, strict=True):
                out[i] = p
        if pictured:
            users = [self.prompt(query, hits[i], family="vlm") for i in pictured]
            scores = self.score_prompts(users, [images[i] for i in pictured])  # type: ignore[misc]
            for i, p in zip(pictured, scores, strict=True):
                out[i] = p
        return out


def load_vlm_reranker(
    model_id: str,
    device: str = "auto",
    quantize: bool | None = None,
    batch_size: int = 8,
    prompt_dir: str | Path | None = None,
) -> VLMReranker:
    """A `VLMReranker` over a transformers VLM (hub id or folder) or a bridge folder.

    The model comes from the generator cache, shared with answering when it is the same model.

    Raises:
        MMRAGError: The model reads no images (use `rerank.method = llm`) or cannot be loaded.
    """
    from mmrag.config import GenerateConfig
    from mmrag.generate.loader import load_generator

    gen = load_generator(GenerateConfig(model=model_id, device=device, quantize=quantize))
    if not gen.reads_images:
        raise MMRAGError(
            f"{model_id} reads no images: rerank.method = vlm needs a VLM or a bridge folder "
            "(use rerank.method = llm for a text LLM)"
        )
    return VLMReranker(
        vlm_scorer(gen.backend), f"vlm:{model_id}", batch_size=batch_size, prompt_dir=prompt_dir
    )
