"""Pointwise LLM reranking: ask a causal LM whether a passage helps answer the question, read yes/no.

The prompt (`prompts/rerank.txt`, overridable like every template) goes through the tokenizer's
chat template, so the model's next token is the first token of its answer. The score is the
softmax over the "yes" and "no" logits at that position:

    p(relevant) = exp(l_yes) / (exp(l_yes) + exp(l_no)),   l_yes = logsumexp of the "yes" tokens

"yes" is several tokens in most vocabularies: BPE tokenizers (GPT-2, SmolLM2, Qwen) have separate
tokens for `yes`, `Yes`, ` yes` and ` Yes`, and which one starts the answer depends on the chat
template; SentencePiece ones (Llama 2, Mistral) start with `▁yes`. `answer_token_ids` collects every
spelling whose *first* token is the whole word, and the logits of each side are summed in
probability space (logsumexp). Spellings that split (`YES` -> `Y` + `ES`) are left out: their first
token also starts unrelated words. A tokenizer without a chat template gets the prompt followed by
`\\nAnswer:`, where a leading-space `yes` is the likely token, which the same set covers.

Prompts are batched with left padding, so the last position of every row is its next token;
position ids follow the attention mask, as in `generate`, so a batch scores like single prompts.

Measured (bench/rerank_dev.py, MultiHop-RAG dev): the packaged SmolLM2-135M answers "No" to most
pairs and ranks about at random (per-query AUC 0.54-0.58 for three prompt wordings, against 0.93
for the hybrid order it reranks), so it lowers Hits@4 and MRR. The method needs a stronger
instruct model; with 135M parameters it is a plumbing default, not a quality one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mmrag.rerank.base import Reranker, passage
from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    import torch
    from PIL import Image

YES_WORDS = ("yes", "Yes", "YES")
NO_WORDS = ("no", "No", "NO")
MAX_PASSAGE_TOKENS = 384
"""Passage tokens shown to the model; the rest is cut (a 180-word chunk is about 250 tokens)."""


def answer_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Ids of the tokens that begin a "yes" and a "no" answer (rule in the module docstring).

    Raises:
        MMRAGError: The vocabulary has no single token for "yes" or for "no".
    """
    unk = getattr(tokenizer, "unk_token_id", None)

    def first_tokens(words: Sequence[str]) -> list[int]:
        found: dict[int, None] = {}
        for word in words:
            for spelling in (word, " " + word):
                ids = tokenizer(spelling, add_special_tokens=False)["input_ids"]
                if not ids or ids[0] == unk:
                    continue
                if str(tokenizer.decode([ids[0]])).strip() == word:
                    found[int(ids[0])] = None
        return list(found)

    yes, no = first_tokens(YES_WORDS), first_tokens(NO_WORDS)
    shared = set(yes) & set(no)
    yes, no = [i for i in yes if i not in shared], [i for i in no if i not in shared]
    if not yes or not no:
        raise MMRAGError("the reranker's tokenizer has no single token for 'yes' or 'no'")
    return yes, no


def yes_probability(logits: torch.Tensor, yes_ids: Sequence[int], no_ids: Sequence[int]) -> list[float]:
    """Softmax over the yes/no logits of each row of `logits` (B, vocab): p(yes) per row."""
    import torch

    lf = logits.float()
    diff = lf[:, list(yes_ids)].logsumexp(-1) - lf[:, list(no_ids)].logsumexp(-1)
    return [float(p) for p in torch.sigmoid(diff).cpu()]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_ids, attention_mask)` with every row right-aligned, so position -1 is each row's last token."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def last_logits(model: Any, **inputs: Any) -> torch.Tensor:
    """Logits of the last position only (`logits_to_keep=1` spares a (B, L, vocab) tensor)."""
    import torch

    with torch.inference_mode():
        try:
            out = model(**inputs, logits_to_keep=1)
        except TypeError:  # models predating `logits_to_keep`
            out = model(**inputs)
    return out.logits[:, -1].float()


class NextTokenScorer(Protocol):
    """A model that reads user turns (and images) and gives the next-token logits after each."""

    tokenizer: Any

    def logits(self, users: Sequence[str], images: Sequence[Image.Image] | None = None) -> torch.Tensor:
        """(len(users), vocab) logits; `images`, when given, holds one image per user turn."""
        ...


class TextScorer:
    """A causal LM and its tokenizer as a `NextTokenScorer` (text only)."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def render(self, user: str) -> str:
        """The user turn in the chat template, ending where the assistant's answer starts."""
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": user}]
            return str(
                self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            )
        return user + "\nAnswer:"

    def logits(self, users: Sequence[str], images: Sequence[Image.Image] | None = None) -> torch.Tensor:
        if images:
            raise MMRAGError("a text LLM cannot score images; use a VLM (rerank.method = vlm)")
        # The chat template already holds the special tokens (BOS, turn markers).
        special = not getattr(self.tokenizer, "chat_template", None)
        rows = [self.tokenizer(self.render(u), add_special_tokens=special)["input_ids"] for u in users]
        ids, mask = left_pad(rows, int(self.tokenizer.pad_token_id or 0))
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self.model.device
        return last_logits(
            self.model, input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev)
        )


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

    The model comes from the generator cache (`mmrag.answer.ask.load_generator`), so a reranker and a
    generator on the same model share one copy. A VLM or bridge given here scores text only.
    """
    from mmrag.config import GenerateConfig
    from mmrag.generate.loader import load_generator

    gen = load_generator(GenerateConfig(model=model_id, device=device, quantize=quantize))
    if gen.reads_images:
        from mmrag.rerank.vlm import vlm_scorer

        scorer: NextTokenScorer = vlm_scorer(gen.backend)
    else:
        scorer = TextScorer(gen.backend.model, gen.backend.tokenizer)
    return LLMReranker(scorer, f"llm:{model_id}", batch_size=batch_size, prompt_dir=prompt_dir)
