"""Label-constrained decoding: every sentence of an answer ends with a source label the model picks.

Asked to "cite each claim like [1]", a small model mostly does not (SmolLM2-135M cited in none of
four tries on dev questions, and copied the prompt's example sentence instead). `LabelAfterSentence`
is a transformers logits processor that leaves the text to the model and constrains only this:
when a sentence ends (a token ending in `.`, `!` or `?`, a line break, the end of the answer, or the
token limit three tokens ahead) and the sentence carries no `[n]` yet, the next tokens are ` [`, one of the
existing labels, and `]`. Which label is the model's choice: the one its own logits prefer among
`1..n_labels`; labels that do not exist cannot be written, and with no sources at all no label can be
opened. A refusal ("Insufficient information") claims nothing and gets no label, and a `.` the model
continues with a digit (`14.3`) is a decimal point, not a sentence end.

The repetition penalty runs inside this processor on unconstrained steps only, so a label already
cited is not penalised when the model picks the next one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

_LABEL = re.compile(r"\[\s*\d+(?:\s*[,\-–]\s*\d+)*\s*\]")
_END = re.compile(r"[.!?][\"')\]]*\s*$")
# A period after these ends no sentence ("The Jaguars vs. Saints", "Apple Inc. said").
_ABBREV = re.compile(
    r"(?:^|\W)(?:vs|mr|mrs|ms|dr|st|jr|sr|inc|corp|co|ltd|no|e\.g|i\.e|u\.s|[a-z])\.\s*$", re.I
)


def _single(tokenizer: Any, text: str) -> int | None:
    """The one token that spells `text`, or None (several tokens, or an unknown word)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == getattr(tokenizer, "unk_token_id", None):
        return None
    return int(ids[0]) if tokenizer.decode(ids).strip() == text.strip() else None


class LabelAfterSentence:
    """Force ` [n]` (n among the labels, chosen by the model) after each sentence that has none.

    Args:
        tokenizer: The generator's tokenizer; labels must be single tokens (`1`..`9` in most
            vocabularies), else the processor does nothing.
        n_labels: Labels `1..n_labels` exist; 0 (no sources): no sentence is labelled, and a `[`
            the model writes may not go on with a digit.
        prompt_len: Leading ids that are the prompt (0 for models fed `inputs_embeds`).
        inner: A logits processor applied on unconstrained steps (the repetition penalty), or None.
        end_ids: Token ids that end generation besides the tokenizer's end of sequence (the chat
            template's end of turn): the answer may not end through them without a label either.
        max_new_tokens: The generation's token limit, or None: an answer about to reach it
            mid-sentence writes its label in the last three tokens.
    """

    def __init__(
        self,
        tokenizer: Any,
        n_labels: int,
        prompt_len: int = 0,
        inner: Any = None,
        end_ids: Any = None,
        max_new_tokens: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.prompt_len = prompt_len
        self.inner = inner
        # " [" is what the processor writes; a "[" the model writes itself opens a label too.
        opens = [t for t in (_single(tokenizer, " ["), _single(tokenizer, "[")) if t is not None]
        self.opens = set(opens)
        self.open = opens[0] if opens else None
        self.close = _single(tokenizer, "]")
        labels = [_single(tokenizer, str(n)) for n in range(1, n_labels + 1)]
        self.labels = [t for t in labels if t is not None]
        usable = self.open is not None and self.close is not None
        self.enabled = bool(usable and (self.labels or n_labels == 0))
        eos = getattr(tokenizer, "eos_token_id", None)
        ends = [eos, *([end_ids] if isinstance(end_ids, int) else list(end_ids or []))]
        self.eos = {int(t) for t in ends if t is not None}
        self.digits = {t for t in (_single(tokenizer, str(d)) for d in range(10)) if t is not None}

    def _breaks_line(self, token: int) -> bool:
        return str(self.tokenizer.decode([token])).startswith("\n")

    def _needs_label(self, row: torch.Tensor, top: int) -> bool:
        """Whether the sentence just ended (or the answer is about to end) without a label."""
        text = str(self.tokenizer.decode(row, skip_special_tokens=True))
        if not text.strip():
            return False
        # "14." then "3": a decimal point; "vs." an abbreviation
        ended = bool(_END.search(text)) and top not in self.digits and not _ABBREV.search(text)
        last_call = self.max_new_tokens is not None and len(row) >= self.max_new_tokens - 3
        # a line break ends a line's claim too ("... was 14.3%" then "\n\n" and the same line again,
        # which the repetition stop cuts: the first line must have its label by then)
        if not ended and top not in self.eos and not last_call and not self._breaks_line(top):
            return False
        body = _END.sub("", text) if ended else text
        parts = re.split(r"(?<=[.!?])\s+|\n+", body)
        sentence = parts[-1] if parts else body
        if _LABEL.search(sentence) or "insufficient information" in sentence.lower():
            return False
        return bool(re.search(r"\w{2,}", sentence))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        if not self.enabled:
            return self.inner(input_ids, scores) if self.inner is not None else scores
        out = self.inner(input_ids, scores.clone()) if self.inner is not None else scores.clone()
        for b, row in enumerate(input_ids[:, self.prompt_len :]):
            last = int(row[-1]) if len(row) else None
            if last in self.opens and not self.labels:
                out[b, sorted(self.digits)] = float("-inf")  # no sources: "[1]" would cite nothing
                continue
            if last in self.opens:
                allowed = self.labels
            elif last in self.labels and len(row) >= 2 and int(row[-2]) in self.opens:
                allowed = [self.close]  # type: ignore[list-item]
            elif self.labels and len(row) and self._needs_label(row, int(out[b].argmax())):
                # the top token after the penalty is the one greedy decoding takes: if that is the
                # end of the answer, the label comes first
                allowed = [self.open]  # type: ignore[list-item]
            else:
                continue
            keep = torch.full_like(out[b], float("-inf"))
            idx = torch.tensor(allowed, device=scores.device)
            keep[idx] = scores[b, idx]  # the model's own preference among the allowed tokens, unpenalised
            out[b] = keep
        return out


__all__ = ["LabelAfterSentence"]
