"""Multiple-choice answers by likelihood: each choice scored as the generator's continuation of the prompt.

A choice's score is the log-probability the generator gives its tokens as the assistant's reply
(the choice text and the end-of-turn marker the chat template puts after it), given the prompt
and the images: their sum, or their mean (`normalise="mean"`, which does not penalise longer
choices). The highest score wins; no free text is parsed. A choice counts with its other surface
forms (a number spelled in words or digits, `choice_forms`).

The three generator backends are scored the way they read a prompt:

- a projector bridge (`BridgeModel`): the prompt's embeddings with the frames spliced in run once,
  then all choices run as one batch on its key/value cache;
- a text LLM (`TextGenerator`): the same, on the chat-templated prompt's ids (no images);
- a transformers VLM (`VLMGenerator`): one full forward pass per choice through the processor,
  which is slower but holds for families whose positions depend on the images (Qwen2-VL's M-RoPE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from mmrag.generate import is_bridge
from mmrag.generate.decode import reuse_cache
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    import torch
    from PIL import Image

Normalise = Literal["sum", "mean"]


def reduce_logprobs(token_logprobs: Sequence[float], normalise: Normalise = "mean") -> float:
    """One choice's score from its tokens' log-probabilities: their sum, or their mean."""
    if not token_logprobs:
        raise MMRAGError("a choice has no tokens to score")
    total = float(sum(token_logprobs))
    if normalise == "sum":
        return total
    if normalise == "mean":
        return total / len(token_logprobs)
    raise MMRAGError(f"unknown normalisation {normalise!r}: use sum or mean")


def score_choices(
    backend: Any,
    prompt: str,
    images: Sequence[Image.Image],
    choices: Sequence[str],
    normalise: Normalise = "mean",
) -> list[float]:
    """Score every choice as the reply to `prompt` about `images`.

    Args:
        backend: A loaded `BridgeModel`, `VLMGenerator` or `TextGenerator` (`Generator.backend`).
        prompt: The user's turn (the chat template wraps it).
        images: Frames; must be empty for a text LLM.
        choices: Candidate answers.
        normalise: `sum` or `mean` of each choice's token log-probabilities.

    Returns:
        One score per choice, higher is more likely.
    """
    if not choices:
        raise MMRAGError("no choices to score")
    forms, owner = expand_forms(choices)
    per_token = choice_logprobs(backend, prompt, images, forms)
    return fold_forms([reduce_logprobs(lp, normalise) for lp in per_token], owner, len(choices), normalise)


def score_choices_each(
    backend: Any,
    prompt: str,
    images: Sequence[Image.Image],
    choices: Sequence[str],
    normalise: Normalise = "mean",
) -> list[list[float]]:
    """`score_choices` with each image alone, one row per image (batched on a bridge)."""
    if not choices:
        raise MMRAGError("no choices to score")
    forms, owner = expand_forms(choices)
    if is_bridge(backend) and images:
        rows = _bridge_logprobs(backend, prompt, images, forms, each=True)
    else:
        rows = [choice_logprobs(backend, prompt, [im], forms) for im in images]
    n = len(choices)
    return [fold_forms([reduce_logprobs(lp, normalise) for lp in row], owner, n, normalise) for row in rows]


def choice_logprobs(
    backend: Any, prompt: str, images: Sequence[Image.Image], choices: Sequence[str]
) -> list[list[float]]:
    """Each choice's per-token log-probabilities (see `score_choices`)."""
    from mmrag.generate.llm import TextGenerator
    from mmrag.generate.vlm import VLMGenerator

    if is_bridge(backend):
        return _bridge_logprobs(backend, prompt, images, choices)[0]
    if isinstance(backend, VLMGenerator):
        return _vlm_logprobs(backend, prompt, images, choices)
    if isinstance(backend, TextGenerator):
        if images:
            raise MMRAGError("a text LLM reads no images; score it without frames")
        return _text_logprobs(backend, prompt, choices)
    raise MMRAGError(f"cannot score choices with a {type(backend).__name__}")


# -- surface forms ----------------------------------------------------------------------------------


@cache
def _number_words() -> dict[str, int]:
    from num2words import num2words

    return {str(num2words(i)): i for i in range(1001)}


def choice_forms(choice: str) -> list[str]:
    """The ways an answer may be written: itself, and a number's other spelling (`twelve` / `12`).

    Speech recognisers write numbers as digits ("the hotel has 12 windows") where choices often spell
    them out, and the other way round; a choice is as likely as all its forms together.
    """
    from num2words import num2words

    word = " ".join(choice.lower().replace(",", "").split())
    if word.isdigit() and int(word) <= 1000:
        return [choice, str(num2words(int(word)))]
    number = _number_words().get(word)
    return [choice] if number is None else [choice, str(number)]


def expand_forms(choices: Sequence[str]) -> tuple[list[str], list[int]]:
    """Every form of every choice, and the index of the choice each form belongs to."""
    forms, owner = [], []
    for i, c in enumerate(choices):
        for f in choice_forms(c):
            forms.append(f)
            owner.append(i)
    return forms, owner


def fold_forms(scores: Sequence[float], owner: Sequence[int], n: int, normalise: Normalise) -> list[float]:
    """One score per choice from its forms' scores: log of the summed probabilities for `sum`
    (the probability of the answer in any form), the best form's for `mean` (not a probability)."""
    out: list[float] = []
    for i in range(n):
        mine = [s for s, o in zip(scores, owner, strict=True) if o == i]
        top = max(mine)
        out.append(top if normalise == "mean" else top + math.log(sum(math.exp(s - top) for s in mine)))
    return out


# -- late fusion ------------------------------------------------------------------------------------


def log_softmax(scores: Sequence[float]) -> list[float]:
    """Scores as log-probabilities over the choices."""
    top = max(scores)
    z = top + math.log(sum(math.exp(s - top) for s in scores))
    return [s - z for s in scores]


def log_mixture(rows: Sequence[Sequence[float]], weights: Sequence[float]) -> list[float]:
    """log sum_r w_r exp(rows[r]) per choice (rows are log-probabilities; weights need not sum to 1)."""
    total = sum(weights)
    out = []
    for j in range(len(rows[0])):
        terms = [math.log(w / total) + r[j] for r, w in zip(rows, weights, strict=True) if w > 0]
        top = max(terms)
        out.append(top + math.log(sum(math.exp(t - top) for t in terms)))
    return out


def naive_bayes(prior: Sequence[float], *experts: Sequence[float]) -> list[float]:
    """p(c | e1, e2, ...) ∝ p(c) prod_i p(c | e_i) / p(c): experts' log-probabilities combined."""
    k = len(experts)
    return log_softmax([sum(e[j] for e in experts) - (k - 1) * prior[j] for j in range(len(prior))])


def _split_reply(render: Any, messages: list[dict[str, Any]], reply: Any) -> tuple[str, str]:
    """`(prompt, reply_text)`: the templated prompt and what the template adds for the reply."""
    prompt = str(render(messages, add_generation_prompt=True, tokenize=False))
    full = str(render([*messages, {"role": "assistant", "content": reply}], tokenize=False))
    if not full.startswith(prompt):
        raise MMRAGError("the chat template renders the assistant turn in a way that cannot be split off")
    return prompt, full[len(prompt) :]


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _cached_logprobs(
    lm: Any, prompt_inputs: dict[str, torch.Tensor], answers: list[list[int]], pad_id: int
) -> list[list[list[float]]]:
    """Run the prompt rows once, then every answer after every row as one batch on their key/value cache.

    `prompt_inputs` holds B rows of the same length (the same prompt, with other images spliced in);
    the result is indexed [row][answer][token].
    """
    import torch

    if any(not a for a in answers):
        raise MMRAGError("a choice has no tokens to score")
    first = next(iter(prompt_inputs.values()))
    device, (rows, n_prompt) = first.device, first.shape[:2]
    n, width = len(answers), max(len(a) for a in answers)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros(n, n_prompt + width, dtype=torch.long)
    for i, a in enumerate(answers):
        ids[i, : len(a)] = torch.tensor(a)
        mask[i, : n_prompt + len(a)] = 1  # padding after an answer sees nothing the answer depends on
    ids, mask = ids.repeat(rows, 1), mask.repeat(rows, 1)  # row r's answers at r * n ... r * n + n - 1
    with torch.inference_mode():
        out = lm(**prompt_inputs, use_cache=True)
        kv = reuse_cache(lm, out, repeat=n)
        rest = lm(input_ids=ids.to(device), attention_mask=mask.to(device), **kv)
    # answer token j is predicted at the prompt's last position (j = 0) or at answer position j - 1
    last = out.logits[:, -1:].repeat_interleave(n, dim=0)
    logits = torch.cat([last, rest.logits[:, :-1]], dim=1)
    logp = logits.float().log_softmax(-1).gather(-1, ids.to(logits.device)[..., None])[..., 0].cpu()
    return [[logp[r * n + i, : len(a)].tolist() for i, a in enumerate(answers)] for r in range(rows)]


def _bridge_logprobs(
    bridge: Any, prompt: str, images: Sequence[Image.Image], choices: Sequence[str], each: bool = False
) -> list[list[list[float]]]:
    """One row for the prompt with all `images`, or with `each` one row per image (batched)."""
    import torch

    n = 1 if each else len(images)
    text, _ = bridge.chat_parts(prompt, n)
    answers = [_ids(bridge.tokenizer, bridge.chat_parts(prompt, n, c)[1]) for c in choices]
    rows = len(images) if each else 1
    prompt_ids = torch.tensor([_ids(bridge.tokenizer, text)] * rows, device=bridge.device)
    feats = bridge.vision_features(list(images)) if images else None
    with torch.inference_mode():
        embeds = bridge.embed(prompt_ids, vision_features=feats)  # image i goes to row i with `each`
    pad = int(bridge.tokenizer.pad_token_id or 0)
    return _cached_logprobs(bridge.llm, {"inputs_embeds": embeds}, answers, pad)


def _text_logprobs(gen: Any, prompt: str, choices: Sequence[str]) -> list[list[float]]:
    import torch

    tok = gen.tokenizer
    if not getattr(tok, "chat_template", None):
        raise MMRAGError("the tokenizer has no chat template; use an instruct model")
    messages = [{"role": "user", "content": prompt}]
    answers = []
    text = ""
    for c in choices:
        text, reply = _split_reply(tok.apply_chat_template, messages, c)
        answers.append(_ids(tok, reply))
    prompt_ids = torch.tensor([_ids(tok, text)], device=gen.model.device)
    return _cached_logprobs(gen.model, {"input_ids": prompt_ids}, answers, int(tok.pad_token_id or 0))[0]


def _vlm_logprobs(
    vlm: Any, prompt: str, images: Sequence[Image.Image], choices: Sequence[str]
) -> list[list[float]]:
    import torch

    proc = vlm.processor
    if not getattr(proc, "chat_template", None):
        raise MMRAGError("the processor has no chat template; use an instruction-tuned VLM")
    content: list[dict[str, Any]] = [{"type": "image"} for _ in images]
    content.append({"type": "text", "text": prompt})
    messages = [{"role": "user", "content": content}]
    rgb = [im.convert("RGB") for im in images]
    dtype = next(p.dtype for p in vlm.model.parameters() if p.is_floating_point())
    out: list[list[float]] = []
    prompt_ids: list[int] | None = None
    for c in choices:
        text, reply = _split_reply(proc.apply_chat_template, messages, [{"type": "text", "text": c}])
        if prompt_ids is None:
            prompt_ids = proc(images=rgb or None, text=text, return_tensors="pt")["input_ids"][0].tolist()
        batch = proc(images=rgb or None, text=text + reply, return_tensors="pt")
        ids = batch["input_ids"][0].tolist()
        n = len(prompt_ids)
        if ids[:n] != prompt_ids or len(ids) == n:
            raise MMRAGError(f"choice {c!r}: its tokens do not extend the prompt's; cannot score it")
        inputs = {
            k: (v.to(vlm.model.device, dtype) if v.is_floating_point() else v.to(vlm.model.device))
            for k, v in batch.items()
        }
        with torch.inference_mode():
            logits = vlm.model(**inputs).logits[0]
        logp = logits[n - 1 : len(ids) - 1].float().log_softmax(-1)
        target = torch.tensor(ids[n:], device=logp.device)
        out.append(logp.gather(-1, target[:, None])[:, 0].cpu().tolist())
    return out


__all__ = [
    "Normalise",
    "choice_forms",
    "choice_logprobs",
    "expand_forms",
    "fold_forms",
    "log_mixture",
    "log_softmax",
    "naive_bayes",
    "reduce_logprobs",
    "score_choices",
    "score_choices_each",
]
