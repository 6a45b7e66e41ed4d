"""The form of answer a question asks for, read from its wording: whether it asks if something is so.

A question that asks whether something is so wants `Yes` or `No` first; `answer` then constrains the
answer's opening to those two (`GenerateConfig.answer_first`, `mmrag.generate.starts`). The refusal
is not among them: offered it, Qwen2.5-Coder-0.5B refused answerable yes/no questions of MultiHop-RAG
dev and its accuracy fell (22 dev questions: 0.545 with the refusal offered, 0.636 without; 0.500
unconstrained). A question with no sources at all is still refused without asking the model.

Such a question opens with an auxiliary verb (`Does the article ...?`) or
puts one after a leading clause (`After the report of October 22, did TechCrunch ...?`); one that
asks who, which or what, or offers a choice (`... before or after ...?`), does not.

On MultiHop-RAG this reading agrees with the gold answers' form (Yes/No or not) on 239 of 249 dev
questions; the ten it misses are answered `Similar`, `True`, `Consistent` and the like.
"""

from __future__ import annotations

import re

_AUX = r"(?:does|did|do|is|was|were|are|has|have|had|can|could|will|would|should)"
_WH = r"(?:which|who|whom|whose|what|where|when|how|why)"
_OPENS = re.compile(rf"^\W*{_AUX}\b", re.I)
_AFTER_CLAUSE = re.compile(rf",\s*{_AUX}\s", re.I)
_ASKS_WHAT = re.compile(rf"^\W*{_WH}\b|,\s*{_WH}\b", re.I)
_CHOICE = re.compile(r"\bor\s+(?:before|after|not)\b|\b\w+\s+or\s+\w+\s*\?\s*$", re.I)

YES_NO_OPENINGS = ("Yes", "No")
"""What an answer to a yes/no question may open with."""


def asks_yes_no(question: str) -> bool:
    """Whether `question` asks if something is so (its answer opens with Yes or No)."""
    q = question.strip()
    if _ASKS_WHAT.search(q) or _CHOICE.search(q):
        return False
    return bool(_OPENS.search(q) or _AFTER_CLAUSE.search(q))


def answer_openings(question: str, enabled: bool = True) -> tuple[str, ...] | None:
    """The openings an answer to `question` is held to (None: any)."""
    return YES_NO_OPENINGS if enabled and asks_yes_no(question) else None


__all__ = ["YES_NO_OPENINGS", "answer_openings", "asks_yes_no"]
