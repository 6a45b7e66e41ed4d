"""Next-token yes/no scoring: the model reads a prompt, p(yes) comes from its next-token logits.

The LLM reranker (`mmrag.rerank.llm`) and the VLM reranker (`mmrag.rerank.vlm`) share this: a
`NextTokenScorer` gives the logits of the token after each prompt (with one image per prompt, or
none), and `yes_probability` turns them into p(relevant):

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

Scorers: `TextScorer` (a causal LM and its tokenizer), `HFVLMScorer` (a transformers VLM and its
processor, prompts through `processor.apply_chat_template`) and `BridgeScorer` (the projector bridge,
`mmrag.generate.bridge`); `vlm_scorer` picks the one for a loaded generator backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from mmrag.generate import is_bridge
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    import torch
    from PIL import Image

YES_WORDS = ("yes", "Yes", "YES")
NO_WORDS = ("no", "No", "NO")


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
    if is_bridge(backend):
        return BridgeScorer(backend)
    if hasattr(backend, "processor"):
        return HFVLMScorer(backend.model, backend.processor)
    raise MMRAGError(f"{type(backend).__name__} is not a vision-language backend")
