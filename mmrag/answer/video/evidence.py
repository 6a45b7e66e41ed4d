"""What a clip's text says about the choices: pointwise mutual information under plain completion.

Scored as the chat reply, a small instruction-tuned model copies poorly from the text it was given:
SmolLM2-135M picked the right one of five choices for 0.65 of 63 dev-seed questions whose answer
was written in the subtitles it read (0.79 as a plain continuation). Scored as a plain continuation,

    {subtitles}
    Question: {question}
    Answer: {choice}

and divided by the same continuation without the subtitles (`Question: ... Answer: {choice}`), the
choice the text makes likelier than the question alone does wins: 1.00 on the same 63 (the
"surface form competition" correction of Holtzman et al., 2021, with the question as the domain).

`evidence` returns that log-ratio per choice (over the choices, in nats). When the text is
irrelevant to the question it stays near zero for every choice; when the text states the answer
one choice stands out by several nats. `decisive` says which case a row is (the margin between the
two best choices, `VideoQAOptions.text_margin`), so late fusion can let the text answer alone
instead of multiplying it with frame scores that never saw the fact.

Each choice counts with its other surface forms (`twelve` / `12`, `scoring.choice_forms`).

Measured on the generated long-video benchmark (`bench/speech.py`, offline bridge, 80 questions, ASR
condition), against the chat reading in the same run: test seed 0.625 overall against 0.475 (questions
answered by the subtitles 0.95 against 0.35, by the speech 0.55 against 0.30), dev seed 0.688 against
0.488. On questions whose choices share the text's part and differ in what only the frames show
("teal, called Lulu" / "black, called Lulu") the margin can still pass on noise, and the text then
picks the colour: those fell from 0.75 to 0.55 on the test seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmrag.answer.video.scoring import _cached_logprobs, _ids, expand_forms, fold_forms, log_softmax
from mmrag.generate import is_bridge
from mmrag.types import MMRAGError


def _causal_lm(backend: Any) -> Any | None:
    """The causal LM under a bridge or a text LLM (which can run without a chat turn); else None."""
    from mmrag.generate.llm import TextGenerator

    if is_bridge(backend):
        return backend.llm
    return backend.model if isinstance(backend, TextGenerator) else None


def reads_completions(backend: Any) -> bool:
    """A text LLM or a projector bridge: plain completions can be scored."""
    return _causal_lm(backend) is not None


def completion_scores(backend: Any, prefix: str, choices: Sequence[str]) -> list[float]:
    """Each choice's summed log-probability as the continuation ` {choice}` of `prefix` (no template).

    A choice's forms count together (log of their summed probabilities).
    """
    if not choices:
        raise MMRAGError("no choices to score")
    lm = _causal_lm(backend)
    if lm is None:
        raise MMRAGError(f"cannot score plain completions with a {type(backend).__name__}")
    tok = backend.tokenizer
    device = next(lm.parameters()).device
    forms, owner = expand_forms(choices)
    import torch

    prompt = {"input_ids": torch.tensor([_ids(tok, prefix)], device=device)}
    answers = [_ids(tok, " " + f.strip()) for f in forms]
    rows = _cached_logprobs(lm, prompt, answers, int(tok.pad_token_id or 0))[0]
    return fold_forms([float(sum(r)) for r in rows], owner, len(choices), "sum")


def completion_prompt(question: str, text: str = "", prompt_dir: str | None = None) -> str:
    """`prompts/video_evidence.txt` filled with the clip's text (empty: the question alone)."""
    from mmrag.prompts import render_prompt

    context = f"{' '.join(text.split())}\n" if text.strip() else ""
    return render_prompt("video_evidence", prompt_dir=prompt_dir, question=question, context=context)


def evidence(
    backend: Any,
    question: str,
    text: str,
    choices: Sequence[str],
    baseline: Sequence[float] | None = None,
    prompt_dir: str | None = None,
) -> tuple[list[float], list[float]]:
    """`(evidence, baseline)`: log p(c | text, question) - log p(c | question), each over the choices.

    `baseline` is the question-alone distribution, computed when not given (pass it back to score
    several texts for one question at the cost of one pass each).
    """
    if baseline is None:
        bare = completion_prompt(question, "", prompt_dir)
        baseline = log_softmax(completion_scores(backend, bare, choices))
    given = log_softmax(completion_scores(backend, completion_prompt(question, text, prompt_dir), choices))
    return [g - b for g, b in zip(given, baseline, strict=True)], list(baseline)


def decisive(evidence_row: Sequence[float], margin: float) -> bool:
    """The text singles out one choice: its evidence beats the runner-up's by at least `margin` nats."""
    if len(evidence_row) < 2:
        return True
    top, second = sorted(evidence_row, reverse=True)[:2]
    return top - second >= margin


__all__ = ["completion_prompt", "completion_scores", "decisive", "evidence", "reads_completions"]
