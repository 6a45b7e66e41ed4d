"""Cross-encoder reranking: a sequence classifier reads the query and the passage together.

Any `AutoModelForSequenceClassification` checkpoint by hub id or folder (bge-reranker, ms-marco
MiniLM cross-encoders, ...). The pair is tokenised as `(query, passage)`; a pair that is too long
loses tokens from its longer side (the passage, unless the query is longer). A model with one
output gives `sigmoid(logit)`; one with two labels (not relevant, relevant) gives the softmax
probability of the second. Non-text hits are read through their text (tags, OCR, captions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmrag.device import resolve_device, resolve_dtype, torch_dtype
from mmrag.rerank.base import Reranker, passage
from mmrag.types import Hit, MMRAGError

DEFAULT_MODEL = "BAAI/bge-reranker-base"
MAX_LENGTH = 512


class CrossEncoderReranker(Reranker):
    """A loaded sequence-classification model and its tokenizer.

    Args:
        model: The classifier (1 or 2 labels), in eval mode.
        tokenizer: Its tokenizer (pairs of texts).
        name: Shown in results, e.g. `cross-encoder:BAAI/bge-reranker-base`.
        batch_size: Pairs per forward pass.
        max_length: Token limit of a pair; the passage side is cut.
    """

    def __init__(
        self, model: Any, tokenizer: Any, name: str, batch_size: int = 8, max_length: int = MAX_LENGTH
    ) -> None:
        labels = int(model.config.num_labels)
        if labels not in (1, 2):
            raise MMRAGError(f"{name}: a reranker needs 1 or 2 output labels, the model has {labels}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        limits = [max_length, getattr(tokenizer, "model_max_length", max_length)]
        limits.append(getattr(model.config, "max_position_embeddings", max_length))
        self.max_length = int(min(limits))

    @classmethod
    def load(
        cls, model_id: str = DEFAULT_MODEL, device: str = "auto", batch_size: int = 8
    ) -> CrossEncoderReranker:
        """Load by hub id or folder, in the `auto` dtype of `mmrag.device.resolve_dtype` (fp32 on CPU).

        Raises:
            MMRAGError: The checkpoint cannot be loaded (not found offline, not a classifier).
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        device = resolve_device(device)
        dtype = torch_dtype(resolve_dtype("auto", device))
        try:
            tok = AutoTokenizer.from_pretrained(model_id)
            model = AutoModelForSequenceClassification.from_pretrained(model_id, dtype=dtype)
        except (OSError, ValueError) as e:
            raise MMRAGError(
                f"{model_id}: cannot load the cross-encoder ({e}); give a sequence-classification "
                "checkpoint by hub id or folder, or another rerank.method (llm, bi-encoder)"
            ) from e
        return cls(model.to(device).eval(), tok, f"cross-encoder:{model_id}", batch_size=batch_size)

    def score(self, query: str, hits: Sequence[Hit]) -> list[float]:
        import torch

        texts = [passage(h) or "(no text)" for h in hits]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        out = [0.0] * len(texts)
        for part in self.batches(order):
            batch = self.tokenizer(
                [query] * len(part),
                [texts[i] for i in part],
                padding=True,
                truncation="longest_first",
                max_length=self.max_length,
                return_tensors="pt",
            )
            batch = {k: v.to(self.model.device) for k, v in batch.items()}
            with torch.inference_mode():
                logits = self.model(**batch).logits.float()
            probs = torch.sigmoid(logits[:, 0]) if logits.shape[-1] == 1 else logits.softmax(-1)[:, 1]
            for i, p in zip(part, probs.cpu().tolist(), strict=True):
                out[i] = float(p)
        return out
