"""Pointwise VLM reranking: the LLM reranker's yes/no scoring, with the hit's picture in the prompt.

Image, page and video hits are shown to the model as pictures (`mmrag.answer.ask.hit_image`: the photo,
the rendered page, the clip's first keyframe) with their text under the `rerank.vlm` template; text
hits, and hits whose file can no longer be read, are scored by the same model without an image under
the plain `rerank` template. Two backends read images: a transformers VLM (`AutoProcessor` + model,
prompts through `processor.apply_chat_template`) and the projector bridge (`mmrag.generate.bridge`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.rerank.llm import LLMReranker, NextTokenScorer, last_logits, left_pad
from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    import torch
    from PIL import Image

IMAGE_MODALITIES = ("image", "page", "video")


class HFVLMScorer:
    """A transformers VLM and its processor as a `NextTokenScorer`; one image per prompt, or none."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)

    def logits(self, users: Sequence[str], images: Sequence[Image.Image] | None = None) -> torch.Tensor:
        if not getattr(self.processor, "chat_template", None):
            raise MMRAGError("the VLM's processor has no chat template; use an instruction-tuned VLM")
        texts = []
        for u in users:
            content = ([{"type": "image"}] if images else []) + [{"type": "text", "text": u}]
            messages = [{"role": "user", "content": content}]
            texts.append(
                self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            )
        # One list per prompt: the form every processor (LLaVA, Idefics3, Qwen2-VL) accepts for batches.
        nested = [[im.convert("RGB")] for im in images] if images else None
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # the last position of each row is its next token
        try:
            batch = self.processor(images=nested, text=texts, padding=True, return_tensors="pt")
        finally:
            self.tokenizer.padding_side = side
        dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())
        dev = self.model.device
        inputs = {k: (v.to(dev, dtype) if v.is_floating_point() else v.to(dev)) for k, v in batch.items()}
        return last_logits(self.model, **inputs)


class BridgeScorer:
    """A projector bridge (`BridgeModel`) as a `NextTokenScorer`; one image per prompt, or none."""

    def __init__(self, bridge: Any) -> None:
        self.bridge = bridge
        self.tokenizer = bridge.tokenizer

    def logits(self, users: Sequence[str], images: Sequence[Image.Image] | None = None) -> torch.Tensor:
        import torch

        n_images = 1 if images else 0
        rows = [
            self.tokenizer(self.bridge.chat_parts(u, n_images)[0], add_special_tokens=False)["input_ids"]
            for u in users
        ]
        ids, mask = left_pad(rows, int(self.tokenizer.pad_token_id or 0))
        dev = self.bridge.device
        feats = self.bridge.vision_features(list(images)) if images else None
        with torch.inference_mode():
            embeds = self.bridge.embed(ids.to(dev), vision_features=feats)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return last_logits(
            self.bridge.llm, inputs_embeds=embeds, attention_mask=mask.to(dev), position_ids=pos.to(dev)
        )


def vlm_scorer(backend: Any) -> NextTokenScorer:
    """The scorer for a loaded generator backend: a bridge, or a `VLMGenerator` (model + processor)."""
    if hasattr(backend, "projector"):
        return BridgeScorer(backend)
    if hasattr(backend, "processor"):
        return HFVLMScorer(backend.model, backend.processor)
    raise MMRAGError(f"{type(backend).__name__} is not a vision-language backend")


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
