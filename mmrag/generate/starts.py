"""Answer-first decoding: the answer's first words are one of a few given openings, the model's pick.

Asked whether something is so, a small model mostly restates the question ("The Verge article
suggests that ...") and never says Yes or No: Qwen2.5-Coder-0.5B answered 5 of 8 such MultiHop-RAG
dev questions that way with the plain `ask` prompt. `StartWith` is a transformers logits processor
that constrains only the opening: the first generated tokens must spell one of the `openings` (for
a yes/no question `Yes`, `No` and the refusal), and which one is the model's choice, by its own
logits among the tokens that keep some opening possible. Once an opening is complete the rest of the
answer is free (the explanation, the source label).

Openings are matched on token ids of the tokenizer's own spelling of each opening, so a word that is
one token in one vocabulary and three in another is handled alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class StartWith:
    """Force the first generated tokens along one of `openings`, the model choosing the branch.

    Args:
        tokenizer: The generator's tokenizer.
        openings: The texts the answer may start with (for example `("Yes", "No",
            "Insufficient information.")`).
        prompt_len: Leading ids that are the prompt (0 for models fed `inputs_embeds`).
    """

    def __init__(self, tokenizer: Any, openings: Sequence[str], prompt_len: int = 0) -> None:
        self.prompt_len = prompt_len
        seqs = [list(tokenizer.encode(o, add_special_tokens=False)) for o in openings if o]
        self.sequences = [s for s in seqs if s]
        self.longest = max((len(s) for s in self.sequences), default=0)

    def allowed(self, generated: Sequence[int]) -> list[int] | None:
        """Token ids allowed next after `generated` (None: an opening is complete, or none fits)."""
        n = len(generated)
        if n >= self.longest:  # past every opening: the rest of the answer is free
            return None
        live = [s for s in self.sequences if s[:n] == list(generated)]
        if not live or any(len(s) == n for s in live):
            return None
        return sorted({s[n] for s in live})

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        out = scores
        for b, row in enumerate(input_ids[:, self.prompt_len :]):
            if len(row) >= self.longest:
                continue
            allowed = self.allowed([int(t) for t in row])
            if allowed is None:
                continue
            if out is scores:
                out = scores.clone()
            keep = torch.full_like(out[b], float("-inf"))
            idx = torch.tensor(allowed, device=scores.device)
            keep[idx] = out[b, idx]
            out[b] = keep
        return out


__all__ = ["StartWith"]
