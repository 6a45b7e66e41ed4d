"""Generation hygiene shared by every backend: stop on repetition, stop strings, a repetition penalty.

Small models loop: the same sentence comes back until the token limit (ten times, 41 s, for one
question in the page). Every backend (text LLM, HF VLM, bridge) generates through
`mmrag.generate.decode.generate_from`, which adds three things built here:

- `RepetitionStop`, a transformers `StoppingCriteria`: generation ends as soon as the text repeats a
  sentence or an n-gram of words, or writes one of the stop strings;
- `clean`, the same rules applied to the final text: the answer is cut where the repeat (or the stop
  string) starts, so it keeps the first occurrence only;
- `stream_clean`, the streaming path: it emits text only when no later cut can reach it (it holds back
  a tail that is still repeating earlier words, or that may be the start of a stop string), so the
  streamed pieces always join to exactly what `clean` returns for the same tokens.

A generation inside `cancellable(event)` also stops once `event` is set (`CancelStop`).

The repetition penalty (`penalty_processor`; off by default, `GenerateConfig.repetition_penalty`
says why) counts only generated tokens: the prompt's tokens are exempt.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmrag.config import GenerateConfig

if TYPE_CHECKING:
    import torch

_WORD = re.compile(r"\S+")
_CITATION = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
# A sentence ends at `.`, `!` or `?` plus the labels that cite it ("... 14.3%. [1] Next"): the label
# belongs to the sentence before it, so a cut at a repeated next sentence keeps it.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s*\[\d+(?:\s*,\s*\d+)*\])*\s+|\n+")
_EDGE = re.compile(r"^\W+|\W+$")


@dataclass(frozen=True)
class StopRules:
    """When generation stops early, and where its text is cut.

    Attributes:
        repeat_ngram: Stop when a run of this many words comes back (0: off).
        repeat_sentence: Stop when a sentence comes back (compared without case, punctuation, labels).
        min_sentence_chars: Shorter sentences ("Yes.") may repeat.
        stop_strings: Text that ends the answer (a chat template's next-turn header, "User:").
    """

    repeat_ngram: int = GenerateConfig.repeat_ngram
    repeat_sentence: bool = GenerateConfig.stop_on_repetition
    min_sentence_chars: int = 12
    stop_strings: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.repeat_ngram or self.repeat_sentence or self.stop_strings)


def _words(text: str) -> list[tuple[int, str]]:
    """(start offset, normalised word) of every word; citation labels are blanked out first."""
    blanked = _CITATION.sub(lambda m: " " * len(m.group()), text)
    out = []
    for m in _WORD.finditer(blanked):
        w = _EDGE.sub("", m.group().lower())
        if w:
            out.append((m.start(), w))
    return out


def _sentence_cut(text: str, rules: StopRules, final: bool) -> int | None:
    """Start of the first sentence that repeats an earlier one (complete sentences only unless `final`)."""
    seen: set[str] = set()
    start = 0
    bounds = [(m.start(), m.end()) for m in _SENTENCE_END.finditer(text)]
    if final:
        bounds.append((len(text), len(text)))
    for end, nxt in bounds:
        key = " ".join(w for _, w in _words(text[start:end]))
        if len(key) >= rules.min_sentence_chars:
            if key in seen:
                return start
            seen.add(key)
        start = nxt
    return None


def _ngram_cut(text: str, n: int) -> int | None:
    """Start of the first run of `n` words that already occurred."""
    words = _words(text)
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(w for _, w in words[i : i + n])
        if gram in seen:
            return words[i][0]
        seen.add(gram)
    return None


def find_cut(text: str, rules: StopRules, final: bool = True) -> int | None:
    """Where the text should end (a stop string, a repeated sentence or n-gram), or None.

    `final=False` is the mid-generation check: the last sentence still being written is not compared.
    """
    cuts = [i for i in (text.find(s) for s in rules.stop_strings if s) if i >= 0]
    if rules.repeat_sentence:
        cuts.append(_sentence_cut(text, rules, final) or -1)
    if rules.repeat_ngram:
        cuts.append(_ngram_cut(text, rules.repeat_ngram) or -1)
    cuts = [c for c in cuts if c >= 0]
    return min(cuts) if cuts else None


def clean(text: str, rules: StopRules) -> str:
    """The text up to the first stop string or repeat, without trailing whitespace."""
    cut = find_cut(text, rules, final=True)
    return (text if cut is None else text[:cut]).rstrip()


def has_repetition(text: str, rules: StopRules | None = None) -> bool:
    """Whether the text repeats a sentence (or an n-gram of words): what the answer suite counts."""
    rules = rules or StopRules()
    check = StopRules(rules.repeat_ngram, True, rules.min_sentence_chars)
    return find_cut(text, check, final=True) is not None


def _held_from(text: str, rules: StopRules) -> int:
    """Offset from which the text may still be cut by what comes next.

    That is the earliest of: a word still being written; the longest tail of words that also
    occurs earlier (it may be the start of a repeat); a tail that is the beginning of a stop string.
    """
    last = re.search(r"\S+$", text)
    hold = last.start() if last else len(text)
    words = _words(text[:hold])
    norm = [w for _, w in words]
    best = 0
    for e in range(len(norm) - 1):  # an earlier word equal to the last: how far back do they agree?
        k = 0
        while k <= e and norm[e - k] == norm[-1 - k]:
            k += 1
        best = max(best, k)
    if best:
        hold = min(hold, words[-best][0])
    for s in rules.stop_strings:
        for j in range(1, len(s)):
            if text.endswith(s[:j]):
                hold = min(hold, len(text) - j)
    return hold


def stream_clean(pieces: Iterable[str], rules: StopRules) -> Iterator[str]:
    """Stream the pieces, cut the way `clean` cuts the whole text: `"".join(...)` equals `clean(text)`."""
    if not rules.active:
        yield from (p for p in pieces if p)
        return
    text, sent, stopped = "", 0, False
    for piece in pieces:
        text += piece  # read to the end: generation stops by itself, and `clean` sees the same text
        stopped = stopped or find_cut(text, rules, final=False) is not None
        if stopped:
            continue
        safe = _held_from(text, rules)
        if safe > sent:
            yield text[sent:safe]
            sent = safe
    rest = clean(text, rules)[sent:]
    if rest:
        yield rest


class RepetitionStop:
    """A transformers `StoppingCriteria`: end generation at a repeat or a stop string.

    Args:
        tokenizer: Decodes the generated ids.
        rules: What counts as a repeat.
        prompt_len: Leading ids that are the prompt (0 for models fed `inputs_embeds`).
    """

    def __init__(self, tokenizer: Any, rules: StopRules, prompt_len: int = 0) -> None:
        self.tokenizer = tokenizer
        self.rules = rules
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        import torch

        done = []
        for row in input_ids[:, self.prompt_len :]:
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            done.append(find_cut(text, self.rules, final=False) is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def template_stops(tokenizer: Any) -> tuple[list[int], tuple[str, ...]]:
    """Token ids and strings that end the assistant's turn, read from the chat template.

    The template renders a two-turn conversation with and without a following user turn; what it
    puts between the assistant's text and the next user's text is the turn end and the next turn's
    header (`<|im_end|>`, `<|im_start|>user`; `<|eot_id|>`; `User:`). Special tokens among them
    become end-of-sequence ids; plain text becomes stop strings.
    """
    if not getattr(tokenizer, "chat_template", None):
        return [], ()
    turns = [{"role": "user", "content": "QQQ1"}, {"role": "assistant", "content": "AAA2"}]
    try:
        two = str(tokenizer.apply_chat_template(turns, tokenize=False))
        three = str(
            tokenizer.apply_chat_template([*turns, {"role": "user", "content": "QQQ3"}], tokenize=False)
        )
    except Exception:  # noqa: BLE001 - a template that needs other roles or fields: no stops from it
        return [], ()
    a, q = three.find("AAA2"), three.find("QQQ3")
    if a < 0 or q < a or not three.startswith(two[: two.find("AAA2") + 4]):
        return [], ()
    between = three[a + 4 : q]
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    ids: list[int] = []
    strings: list[str] = []
    for part in re.split(r"(<[^<>\s]+>)", between):
        part = part.strip()
        if part in special:
            tid = tokenizer.convert_tokens_to_ids(part)
            if isinstance(tid, int) and tid >= 0:
                ids.append(tid)
        elif part:
            line = part.split("\n")[0].strip()
            if ":" in line:  # a plain-text turn header ("User:", "### Human:")
                strings.append(line)
    return ids, tuple(s for s in strings if len(s) >= 3)


def rules_for(tokenizer: Any, enabled: bool = True, repeat_ngram: int | None = None) -> StopRules:
    """The stop rules of one tokenizer: repetition (unless disabled) and its template's stop strings."""
    _, strings = template_stops(tokenizer)
    n = GenerateConfig.repeat_ngram if repeat_ngram is None else repeat_ngram
    return StopRules(repeat_ngram=n if enabled else 0, repeat_sentence=enabled, stop_strings=strings)


def generation_options(cfg: GenerateConfig) -> dict[str, Any]:
    """`Generator.generate` keywords of a config: the answer length and the hygiene settings."""
    d = GenerateConfig
    return {
        "max_new_tokens": cfg.max_new_tokens,
        "stop_on_repetition": getattr(cfg, "stop_on_repetition", d.stop_on_repetition),
        "repeat_ngram": getattr(cfg, "repeat_ngram", d.repeat_ngram),
        "repetition_penalty": getattr(cfg, "repetition_penalty", d.repetition_penalty),
    }


def penalty_processor(penalty: float, prompt_len: int) -> Any:
    """A repetition penalty on generated tokens only (None when `penalty` is 1)."""
    if not penalty or penalty == 1.0:
        return None
    from transformers import RepetitionPenaltyLogitsProcessor

    return RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=prompt_len)


_CANCEL: ContextVar[threading.Event | None] = ContextVar("mmrag_generation_cancel", default=None)


@contextmanager
def cancellable(event: threading.Event) -> Iterator[None]:
    """Generations started inside this block (on this thread) stop at the next token once `event` is
    set: a server whose client went away stops spending the cores on its answer."""
    token = _CANCEL.set(event)
    try:
        yield
    finally:
        _CANCEL.reset(token)


class CancelStop:
    """A transformers `StoppingCriteria` that ends generation once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def cancel_stop() -> CancelStop | None:
    """The stop for the `cancellable` block this thread is in; None outside one."""
    event = _CANCEL.get()
    return CancelStop(event) if event is not None else None
