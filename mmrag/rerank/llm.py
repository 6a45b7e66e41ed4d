"""Pointwise LLM reranking: ask a causal LM whether a passage helps answer the question, read yes/no.

The prompt (`prompts/rerank.txt`, overridable like every template) goes through the tokenizer's
chat template, so the model's next token is the first token of its answer; the score is p(yes)
from the yes/no logits at that position (`mmrag.rerank.scoring`, which also holds the scorers).

Measured (bench/rerank_dev.py, MultiHop-RAG dev): the packaged SmolLM2-135M answers "No" to most
pairs and ranks about at random (per-query AUC 0.54-0.58 for three prompt wordings, against 0.93
for the hybrid order it reranks), so it lowers Hits@4 and MRR. The method needs a stronger
instruct model; with 135M parameters it is a plumbing default, not a quality one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.rerank.base import Reranker, passage
from mmrag.rerank.scoring import NextTokenScorer, TextScorer, answer_token_ids, vlm_scorer, yes_probability
from mmrag.types import Hit

if TYPE_CHECKING:
    from PIL import Image

MAX_PASSAGE_TOKENS = 384
"""Passage tokens shown to the model; the rest is cut (a 180-word chunk is about 250 tokens)."""


class LLMReranker(Reranker):
    """Pointwise yes/no reranking with a causal LM (text hits; other hits are read through their text).

    Args:
        scorer: The model (`TextScorer`, or a VLM scorer used without images).
        name: Shown in results, e.g. `llm:smollm2-135m`.
        batch_size: Prompts per forward pass.
        prompt_dir: Folder of templates overriding the packaged `rerank.txt`.
        template: Template name; it must use `{question}` and `{passage}`.
        max_passage_tokens: Passage tokens kept in the prompt.
    """

    def __init__(
        self,
        scorer: NextTokenScorer,
        name: str,
        batch_size: int = 8,
        prompt_dir: str | Path | None = None,
        template: str = "rerank",
        max_passage_tokens: int = MAX_PASSAGE_TOKENS,
    ) -> None:
        self.scorer = scorer
        self.name = name
        self.batch_size = batch_size
        self.prompt_dir = prompt_dir
        self.template = template
        self.max_passage_tokens = max_passage_tokens
        self.yes_ids, self.no_ids = answer_token_ids(scorer.tokenizer)

    def truncate(self, text: str) -> str:
        """`text` cut to `max_passage_tokens` tokens of the model's tokenizer."""
        tok = self.scorer.tokenizer
        ids = tok(text, add_special_tokens=False, truncation=True, max_length=self.max_passage_tokens)
        if len(ids["input_ids"]) < self.max_passage_tokens:
            return text
        return str(tok.decode(ids["input_ids"], skip_special_tokens=True))

    def prompt(self, query: str, hit: Hit, family: str | None = None) -> str:
        """The user turn for one pair, from the template (the `family` variant when there is one)."""
        from mmrag.prompts import render_prompt

        body = self.truncate(passage(hit)) or "(no text)"
        return render_prompt(self.template, family, self.prompt_dir, question=query, passage=body)

    def score_prompts(self, users: Sequence[str], images: Sequence[Image.Image] | None = None) -> list[float]:
        """p(yes) per user turn, batched; prompts of similar length share a batch (less padding)."""
        order = sorted(range(len(users)), key=lambda i: len(users[i]))
        out = [0.0] * len(users)
        for part in self.batches(order):
            imgs = [images[i] for i in part] if images else None
            logits = self.scorer.logits([users[i] for i in part], imgs)
            for i, p in zip(part, yes_probability(logits, self.yes_ids, self.no_ids), strict=True):
                out[i] = p
        return out

    def score(self, query: str, hits: Sequence[Hit]) -> list[float]:
        return self.score_prompts([self.prompt(query, h) for h in hits])


def load_llm_reranker(
    model_id: str,
    device: str = "auto",
    quantize: bool | None = None,
    batch_size: int = 8,
    prompt_dir: str | Path | None = None,
) -> LLMReranker:
    """An `LLMReranker` over a causal LM (hub id, folder, or packaged name such as `smollm2-135m`).

    The model comes from the generator cache (`mmrag.generate.loader.load_generator`), so a reranker and a
    generator on the same model and dtype share one copy. A VLM or bridge given here scores text only.
    On a CPU the reranker reads in float32: in bfloat16 SmolLM2's yes/no scores no longer put the
    relevant passage first (`tests/test_rerank.py`), and ranking was never measured in it.
    """
    from mmrag.config import GenerateConfig
    from mmrag.device import resolve_device
    from mmrag.generate.loader import load_generator

    dtype = "float32" if resolve_device(device) == "cpu" else "auto"
    gen = load_generator(GenerateConfig(model=model_id, device=device, quantize=quantize, dtype=dtype))
    if gen.reads_images:
        scorer: NextTokenScorer = vlm_scorer(gen.backend)
    else:
        scorer = TextScorer(gen.backend.model, gen.backend.tokenizer)
    return LLMReranker(scorer, f"llm:{model_id}", batch_size=batch_size, prompt_dir=prompt_dir)
