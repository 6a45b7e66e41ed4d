"""Questions about long videos, Goldfish-style: retrieve the few relevant clips, then answer from them.

An index holds a long video as clip points (`t_start`/`t_end`, a keyframes-mean image vector, the
subtitles shown during the clip as text). A question runs as:

1. retrieval: the hybrid search (text embedding and BM25 over the subtitles and any caption, plus
   the clip vectors where the image encoder reads text), restricted to video clips, to one video
   (a path glob) and to a time range when given;
2. context: the top `context_clips` hits, plus the clips just before or after them when the
   question asks about before/after (cue words, or the `neighbours` switch);
3. answer: a frame budget (8 by default) is split across the context clips and the frames are
   decoded from the video; the subtitles go in with their time ranges
   (`[00:12:31–00:12:41] ...`). With `choices`, each choice is scored by its log-likelihood as the
   reply and the best one wins (no free text is parsed): in one prompt holding everything
   (`joint`), or per clip and per source and then combined (`late`, for the projector bridge; see
   `mmrag.answer.video.answer`). Without choices the generator writes a free-form answer.

The answer names the clips it used with their time ranges (`HH:MM:SS–HH:MM:SS`).

Example:
    >>> from mmrag import Pipeline
    >>> with Pipeline.load("./tv", **{"generate.model": "~/.cache/mmrag/bridges/efficientnet-smollm2"}) as p:
    ...     a = p.ask("Where are they?", video="episode01.mkv", choices=["kitchen", "car"])
    ...     print(a.text)                                                          # doctest: +SKIP
    kitchen (clips: episode01.mkv 00:12:31–00:12:41)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mmrag.answer.video.scoring import Normalise
from mmrag.types import Hit, MMRAGError, format_span

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mmrag.store.base import Store

Direction = Literal["before", "after"]
ADJACENT_GAP = 0.5
"""Seconds between two clips that still count as adjacent."""

# Words that point at what happened around a moment rather than at the moment itself.
_BEFORE = re.compile(
    r"\b(before|beforehand|earlier|previous(ly)?|prior|preceding|precede[sd]?|until)\b", re.I
)
_AFTER = re.compile(
    r"\b(after|afterwards?|later|next|following|follows?|followed|then|subsequent(ly)?)\b", re.I
)


@dataclass
class VideoQAOptions:
    """How a video question is answered."""

    k: int = 5
    """Clips retrieved (ranked); `VideoAnswer.retrieved` holds them."""
    context_clips: int = 3
    """Top retrieved clips whose frames and subtitles the generator reads."""
    frames: int = 8
    """Frame budget for the whole answer, split across the context clips."""
    frame_split: Literal["even", "rank"] = "rank"
    """`even`: the same number per clip; `rank`: shares proportional to 1/rank, so the top hit gets most."""
    frame_px: int | None = None
    """Longest side of the frames given to the generator (downscaled by area); None keeps them as
    decoded (at most 384 px). A bridge reads best at the scale it was trained on: 64 for easy-VQA."""
    neighbours: bool | Literal["auto"] = "auto"
    """Add the clips adjacent to the context clips: `auto` when the question has before/after cue words
    (only the side it points at), True always (both sides), False never."""
    use_frames: bool = True
    """Give the generator frames (ignored for a text-only generator)."""
    use_subtitles: bool = True
    """Give the generator the clips' subtitles (and captions) with their time ranges."""
    normalise: Normalise = "mean"
    """Multiple choice: a choice's score is the `sum` or the `mean` of its tokens' log-probabilities."""
    fusion: Literal["auto", "joint", "late"] = "auto"
    """Multiple choice: `joint` scores each choice once, given all frames and subtitles in one prompt;
    `late` asks each clip's subtitles and each frame separately and combines the answers (naive Bayes
    over the sources with the question-only prior, then a mixture over clips weighted 1/rank), which
    suits generators trained on one image and short prompts; `auto` is `late` for a projector bridge
    and `joint` otherwise."""
    text_scoring: Literal["pmi", "chat"] = "pmi"
    """Late fusion: how a clip's subtitles (or transcript) weigh the choices. `pmi`: each choice as
    a plain continuation of the text and the question, against the question alone
    (`mmrag.answer.video.evidence`); a text that singles out a choice by `text_margin` nats answers
    for its clip, and any other text joins the frames as `chat` does. `chat`: the choice as the chat
    reply to the text and question, always combined with the frames. (`pmi` needs a text LLM or a
    bridge; a VLM uses `chat`.)"""
    text_margin: float = 1.0
    """Nats by which the text's best choice must beat the runner-up for the text to answer alone
    (chosen on the dev seed of the generated long-video benchmark, from 0.8 to 3.0)."""
    context_chars: int = 3000
    """Budget of subtitle text in the prompt."""
    max_new_tokens: int = 64
    """Free-form answers: upper bound on generated tokens."""
    prompt_dir: str | None = None
    """Folder of prompt templates overriding `prompts/video_qa.txt` and `prompts/video_choice.txt`."""


@dataclass
class VideoClip:
    """A clip given to the generator."""

    hit: Hit
    rank: int | None
    """1-based retrieval rank; None for a neighbour."""
    neighbour_of: int | None = None
    """Rank of the hit this clip is adjacent to (neighbours only)."""
    n_frames: int = 0
    """Frames of this clip the generator saw."""

    @property
    def span(self) -> str:
        """`HH:MM:SS–HH:MM:SS`."""
        return format_span(self.hit.t_start or 0.0, self.hit.t_end)

    def to_dict(self) -> dict[str, Any]:
        h = self.hit
        return {
            "path": h.path,
            "t_start": h.t_start,
            "t_end": h.t_end,
            "span": self.span,
            "rank": self.rank,
            "neighbour_of": self.neighbour_of,
            "score": h.score,
            "n_frames": self.n_frames,
            "text": h.text,
        }


@dataclass
class VideoAnswer:
    """An answer about a video, the clips it came from, and where the time went."""

    question: str
    answer: str
    """The chosen choice, or the generated text."""
    clips: list[VideoClip] = field(default_factory=list)
    """Clips the generator read, in time order."""
    retrieved: list[Hit] = field(default_factory=list)
    """The ranked retrieval results (top k)."""
    choices: list[str] | None = None
    scores: list[float] | None = None
    """Per-choice scores (log-likelihood, summed or averaged over the choice's tokens)."""
    chosen: int | None = None
    """Index of the winning choice."""
    parts: dict[str, list[float]] = field(default_factory=dict)
    """Late fusion: the sources' own choice log-probabilities (`subtitles`, `frames`, `prior`)."""
    timings: dict[str, float] = field(default_factory=dict)
    model: str = ""

    @property
    def text(self) -> str:
        """The answer followed by the clips it used: `kitchen (clips: ep1.mkv 00:12:31–00:12:41, ...)`."""
        return f"{self.answer} ({cite_clips(self.clips)})" if self.clips else self.answer

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "text": self.text,
            "choices": self.choices,
            "scores": self.scores,
            "chosen": self.chosen,
            "parts": self.parts,
            "clips": [c.to_dict() for c in self.clips],
            "retrieved": [{k: v for k, v in h.to_dict().items() if k != "payload"} for h in self.retrieved],
            "contexts": [c.hit.text or "" for c in self.clips],
            "timings": self.timings,
            "model": self.model,
        }


def cite_clips(clips: Sequence[VideoClip]) -> str:
    """`clips: a.mp4 00:00:10–00:00:20, 00:01:00–00:01:10; b.mp4 ...`, grouped by video, in time order."""
    by_video: dict[str, list[VideoClip]] = {}
    for c in sorted(clips, key=lambda c: (c.hit.path, c.hit.t_start or 0.0)):
        by_video.setdefault(c.hit.path, []).append(c)
    parts = [f"{Path(p).name} " + ", ".join(c.span for c in cs) for p, cs in by_video.items()]
    return "clips: " + "; ".join(parts)


# -- retrieval --------------------------------------------------------------------------------------


def time_filter(spec: str | tuple[float, float] | None) -> str | None:
    """A time range as the search filter reads it (`"10-60"`, seconds).

    Accepts `(lo, hi)` in seconds, `"10-60"`, or clock times `"00:12:00-00:13:30"` / `"12:00-13:30"`.
    """
    if spec is None:
        return None
    if isinstance(spec, tuple):
        return f"{float(spec[0])}-{float(spec[1])}"
    parts = [p.strip() for p in re.split(r"\s*(?:–|—|-|\.\.)\s*", spec.strip())]
    if len(parts) == 2 and any(":" in p for p in parts):
        return "-".join(str(_clock_seconds(p, spec)) if p else "" for p in parts)
    return spec


def _clock_seconds(text: str, spec: str) -> float:
    try:
        fields = [float(x) for x in text.split(":")]
    except ValueError:
        raise MMRAGError(
            f"bad time range {spec!r}: use seconds (10-60) or clock times (00:10-01:00)"
        ) from None
    if len(fields) > 3:
        raise MMRAGError(f"bad time range {spec!r}: use HH:MM:SS")
    seconds = 0.0
    for f in fields:
        seconds = seconds * 60 + f
    return seconds


def retrieve_clips(
    search_fn: Callable[..., list[Hit]],
    question: str,
    video: str | None = None,
    time: str | tuple[float, float] | None = None,
    k: int = 5,
) -> list[Hit]:
    """The top `k` video clips for a question (hybrid search), within one video and a time range."""
    return search_fn(question, k=k, modality="video", path=video, time=time_filter(time))


def neighbour_directions(question: str) -> set[Direction]:
    """Which adjacent clips a question points at: `before`, `after`, both, or none (no cue word)."""
    out: set[Direction] = set()
    if _BEFORE.search(question):
        out.add("before")
    if _AFTER.search(question):
        out.add("after")
    return out


def adjacent_clips(store: Store, hit: Hit, directions: set[Direction]) -> list[Hit]:
    """The clips of the same video that end where `hit` starts (`before`) or start where it ends (`after`).

    "Where" allows a gap of up to `ADJACENT_GAP` seconds (clips of some segmenters do not touch).
    """
    from mmrag.retrieve.query import to_hits
    from mmrag.store.base import ScoredPoint, SearchFilter

    if hit.t_start is None or not directions:
        return []
    t0, t1 = hit.t_start, hit.t_end if hit.t_end is not None else hit.t_start
    gap = ADJACENT_GAP
    flt = SearchFilter(modalities=["video"], paths=[hit.path], t_min=t0 - gap, t_max=t1 + gap)
    found = to_hits([ScoredPoint(str(p["id"]), 0.0, p["payload"]) for p in store.scroll(flt)])
    out = []
    for h in sorted(found, key=lambda h: h.t_start or 0.0):
        if h.id == hit.id or h.t_start is None:
            continue
        end = h.t_end if h.t_end is not None else h.t_start
        if "before" in directions and h.t_start < t0 and abs(end - t0) <= gap:
            out.append(h)
        elif "after" in directions and h.t_start > t0 and abs(h.t_start - t1) <= gap:
            out.append(h)
    return out


def context_clips(store: Store, question: str, hits: Sequence[Hit], opts: VideoQAOptions) -> list[VideoClip]:
    """The clips the generator reads, in rank order: the top hits, then their neighbours."""
    top = [VideoClip(h, rank) for rank, h in enumerate(hits[: opts.context_clips], 1)]
    if opts.neighbours == "auto":
        directions = neighbour_directions(question)
    else:
        directions = {"before", "after"} if opts.neighbours else set()
    seen = {c.hit.id for c in top}
    extra: list[VideoClip] = []
    for c in top:
        for h in adjacent_clips(store, c.hit, directions):
            if h.id not in seen:
                seen.add(h.id)
                extra.append(VideoClip(h, None, neighbour_of=c.rank))
    return top + extra


def clip_weights(clips: Sequence[VideoClip]) -> list[float]:
    """Mixture weights for late fusion: 1/rank, a neighbour weighing as the hit it is adjacent to."""
    ranks = [c.rank if c.rank is not None else c.neighbour_of for c in clips]
    return [1.0 / r if r else 1.0 for r in ranks]
