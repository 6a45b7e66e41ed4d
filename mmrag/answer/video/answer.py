"""Answering from context clips: the prompt, the frames, and the two ways of scoring choices.

`joint` (one pass): every context clip's subtitles with their time ranges, the question, and all
frames (in time order) in one prompt; each choice is scored once.

`late` (several short passes), for generators that read one image and a short prompt best (the
projector bridge was trained on one 64-px image and a one-line question):

    prior      p(c | question)                          the question alone
    subtitles  p(c | clip's subtitles, question)        one pass per clip
    frames     p(c | frame, question)                   one pass per frame, averaged per clip
    clip       p(c | both) ∝ subtitles * frames / prior  naive Bayes: each source's evidence counted once
    answer     sum over clips of w_clip * p(c | clip)    a mixture, w = 1/rank (Goldfish answers per clip too)

With `text_scoring="pmi"` (the default) a clip's text is first read as a plain continuation
(`mmrag.answer.video.evidence`): when it singles out one choice by `text_margin` nats, the clip term
is the prior times that evidence and the frames do not count; otherwise the text is scored as above.

Without frames (or without subtitles) the clip term is the other source alone, so the ablations
are the same computation with a source switched off, and `VideoAnswer.parts` holds them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mmrag.answer.video.clips import (
    VideoAnswer,
    VideoClip,
    VideoQAOptions,
    clip_weights,
    context_clips,
    retrieve_clips,
)
from mmrag.answer.video.evidence import decisive, evidence, reads_completions
from mmrag.answer.video.frames import frames_for_clip, shrink, split_frame_budget
from mmrag.answer.video.scoring import (
    log_mixture,
    log_softmax,
    naive_bayes,
    score_choices,
    score_choices_each,
)
from mmrag.generate import is_bridge
from mmrag.types import MMRAGError, format_span

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.generate.loader import Generator
    from mmrag.store.base import Store
    from mmrag.types import Hit

ClipFrames = list[tuple[float, "Image.Image"]]
"""A clip's frames with their times (seconds)."""


def clip_text(clip: VideoClip) -> str:
    """What was said during the clip (subtitles or transcript), and any caption as `(on screen: ...)`."""
    body = " ".join((clip.hit.text or "").split())
    caption = clip.hit.payload.get("caption")
    if caption and str(caption) not in body:
        body = f"{body} (on screen: {' '.join(str(caption).split())})".strip()
    return body


def subtitle_context(clips: Sequence[VideoClip], budget_chars: int) -> str:
    """One line per clip in time order: `[00:12:31–00:12:41] what was said` (and any caption)."""
    from pathlib import Path

    several = len({c.hit.path for c in clips}) > 1
    lines: list[str] = []
    used = 0
    for c in sorted(clips, key=lambda c: (c.hit.path, c.hit.t_start or 0.0)):
        body = clip_text(c)
        head = (
            f"{Path(c.hit.path).name} " if several else ""
        ) + f"[{format_span(c.hit.t_start or 0.0, c.hit.t_end)}]"
        line = f"{head} {body or '(no subtitles)'}"
        room = budget_chars - used
        if lines and room < 40:
            break
        lines.append(line[: max(room, 40)])
        used += len(lines[-1]) + 1
    return "\n".join(lines)


def build_prompt(
    question: str,
    clips: Sequence[VideoClip],
    opts: VideoQAOptions,
    choices: Sequence[str] | None = None,
    family: str | None = None,
) -> str:
    """The user's turn: `prompts/video_choice.txt` (with choices) or `prompts/video_qa.txt`.

    The templates get `question`, `context` (`Subtitles:` and the clip lines, or empty) and
    `options` (the choices, one per line, for templates that list them).
    """
    from mmrag.prompts import render_prompt

    subs = subtitle_context(clips, opts.context_chars) if opts.use_subtitles and clips else ""
    context = f"Subtitles:\n{subs}\n\n" if subs else ""
    name = "video_choice" if choices else "video_qa"
    options = "\n".join(f"- {c}" for c in choices or [])
    return render_prompt(
        name, family=family, prompt_dir=opts.prompt_dir, question=question, context=context, options=options
    )


def decode_frames(clips: Sequence[VideoClip], opts: VideoQAOptions) -> list[ClipFrames]:
    """Each clip's frames (clips in rank order; the budget split by `opts.frame_split`); sets `n_frames`."""
    shares = split_frame_budget(opts.frames, len(clips), opts.frame_split)
    out = []
    for c, n in zip(clips, shares, strict=True):
        got = frames_for_clip(c.hit, n) if n else []
        if opts.frame_px:
            got = [(t, shrink(im, opts.frame_px)) for t, im in got]
        c.n_frames = len(got)
        out.append(got)
    return out


def _late_scores(
    gen: Generator,
    question: str,
    clips: Sequence[VideoClip],
    frames: Sequence[ClipFrames],
    choices: Sequence[str],
    opts: VideoQAOptions,
    family: str | None,
) -> tuple[list[float], dict[str, list[float]]]:
    """Late fusion (see the module docstring): the answer's scores and each source's own."""
    backend, norm = gen.backend, opts.normalise
    bare = build_prompt(question, [], opts, choices, family)
    prior = log_softmax(score_choices(backend, bare, [], choices, norm))
    pmi = opts.text_scoring == "pmi" and reads_completions(backend)
    baseline: list[float] | None = None
    subs_rows, frame_rows, clip_rows = [], [], []
    for c, fr in zip(clips, frames, strict=True):
        subs, alone = prior, False
        text = clip_text(c) if opts.use_subtitles else ""
        if text and pmi:
            said, baseline = evidence(backend, question, text, choices, baseline, opts.prompt_dir)
            alone = decisive(said, opts.text_margin)
            if alone:  # the text states the answer: it decides for this clip, frames or not
                subs = log_softmax([p + e for p, e in zip(prior, said, strict=True)])
        if text and not alone:
            prompt = build_prompt(question, [c], opts, choices, family)
            subs = log_softmax(score_choices(backend, prompt, [], choices, norm))
        seen = prior
        if fr:
            rows = [
                log_softmax(r) for r in score_choices_each(backend, bare, [im for _, im in fr], choices, norm)
            ]
            seen = log_softmax([sum(col) / len(rows) for col in zip(*rows, strict=True)])
        subs_rows.append(subs)
        frame_rows.append(seen)
        clip_rows.append(subs if alone else naive_bayes(prior, subs, seen))
    weights = clip_weights(clips)
    parts = {
        "subtitles": log_mixture(subs_rows, weights),
        "frames": log_mixture(frame_rows, weights),
        "prior": prior,
    }
    return log_mixture(clip_rows, weights), parts


def answer_from_clips(
    gen: Generator,
    question: str,
    clips: Sequence[VideoClip],
    choices: Sequence[str] | None = None,
    opts: VideoQAOptions | None = None,
    frames: Sequence[ClipFrames] | None = None,
    on_token: Callable[[str], None] | None = None,
) -> VideoAnswer:
    """Answer from given context clips (retrieval already done).

    Args:
        gen: A loaded generator (`mmrag.answer.ask.load_generator`).
        question: The question.
        clips: Context clips in rank order (their `n_frames` are set when frames are decoded).
        choices: Multiple choice: score each and pick the likeliest. None: free-form.
        opts: Options (frames, subtitles, fusion, normalisation, prompts).
        frames: Each clip's frames, already decoded (`decode_frames`); ignored without `use_frames`.
        on_token: Free-form mode: called with each generated piece (streaming).
    """
    opts = opts or VideoQAOptions()
    if opts.text_scoring not in ("pmi", "chat"):
        raise MMRAGError(f"text_scoring must be pmi or chat (got {opts.text_scoring!r})")
    t0 = time.perf_counter()
    clips = [replace(c) for c in clips]  # n_frames is per answer: the caller's clips stay as they were
    if opts.use_frames and gen.reads_images:
        frames = list(frames) if frames is not None else decode_frames(clips, opts)
        for c, fr in zip(clips, frames, strict=True):
            c.n_frames = len(fr)
    else:
        frames = [[] for _ in clips]
        for c in clips:
            c.n_frames = 0
    bridge = is_bridge(gen.backend)
    family = "bridge" if bridge else None
    t1 = time.perf_counter()
    ordered = sorted(clips, key=lambda c: (c.hit.path, c.hit.t_start or 0.0))
    ans = VideoAnswer(question, "", ordered, model=gen.model_id)
    if choices:
        late = opts.fusion == "late" or (opts.fusion == "auto" and bridge)
        if late:
            scores, ans.parts = _late_scores(gen, question, clips, frames, choices, opts, family)
        else:
            flat = sorted((tf for fr in frames for tf in fr), key=lambda tf: tf[0])
            prompt = build_prompt(question, clips, opts, choices, family)
            scores = score_choices(gen.backend, prompt, [im for _, im in flat], choices, opts.normalise)
        ans.chosen = max(range(len(scores)), key=scores.__getitem__)
        ans.answer, ans.choices, ans.scores = choices[ans.chosen], list(choices), scores
    else:
        flat = sorted((tf for fr in frames for tf in fr), key=lambda tf: tf[0])
        prompt = build_prompt(question, clips, opts, None, family)
        ans.answer = _generate(gen, prompt, [im for _, im in flat], opts.max_new_tokens, on_token)
    ans.timings = {"frames": round(t1 - t0, 4), "answer": round(time.perf_counter() - t1, 4)}
    return ans


def _generate(
    gen: Generator, prompt: str, images: list[Image.Image], max_new_tokens: int, on_token: Any
) -> str:
    if on_token is None:
        return str(gen.generate(prompt, images, max_new_tokens=max_new_tokens)).strip()
    pieces = []
    for piece in gen.generate(prompt, images, max_new_tokens=max_new_tokens, stream=True):
        pieces.append(piece)
        on_token(piece)
    return "".join(pieces).strip()


def answer_video(
    search_fn: Callable[..., list[Hit]],
    store: Store,
    generator: Callable[[], Generator],
    question: str,
    video: str | None = None,
    choices: Sequence[str] | None = None,
    *,
    time_range: str | tuple[float, float] | None = None,
    options: VideoQAOptions | None = None,
    on_token: Callable[[str], None] | None = None,
    **overrides: Any,
) -> VideoAnswer:
    """Answer a question about a (long) video from its retrieved clips.

    Args:
        search_fn: `search_fn(question, k=..., modality="video", path=..., time=...)` returns hits
            (`Pipeline.search` over an index holding the video's clips).
        store: The index's store (the clips next to a hit are read from it).
        generator: Returns the generator; called once clips were found (timed as `load`). A bridge
            or VLM reads the frames; a text LLM the subtitles only.
        question: The question.
        video: Path or glob of the video (`episode01.mkv`); None searches every indexed video.
        choices: Multiple choice: each is scored by log-likelihood and the best wins. None: free-form.
        time_range: Only clips overlapping this range: `(lo, hi)` seconds, `"600-900"`, `"10:00-15:00"`.
        options: `VideoQAOptions`; keyword `overrides` replace single fields (`frames=4`).
        on_token: Free-form mode: called with each generated piece.

    Returns:
        `VideoAnswer`: `answer`, `text` (answer plus the clips' time ranges), `clips`, `retrieved`,
        `scores` and `chosen` (multiple choice), `timings`.

    Raises:
        MMRAGError: No clip matches (no video indexed there, or the filters exclude everything).
    """
    opts = replace(options or VideoQAOptions(), **overrides)
    if choices is not None and len(choices) < 2:
        raise MMRAGError("multiple choice needs at least two choices")
    t0 = time.perf_counter()
    hits = retrieve_clips(search_fn, question, video, time_range, max(opts.k, opts.context_clips))
    if not hits:
        where = f" in {video}" if video else ""
        raise MMRAGError(f"no video clip found{where}: index the video first, or widen the filters")
    clips = context_clips(store, question, hits, opts)
    t_retrieve = time.perf_counter() - t0
    t1 = time.perf_counter()
    gen = generator()
    t_load = time.perf_counter() - t1
    ans = answer_from_clips(gen, question, clips, choices, opts, on_token=on_token)
    ans.retrieved = hits[: opts.k]
    ans.timings = {"retrieve": round(t_retrieve, 4), "load": round(t_load, 4), **ans.timings}
    return ans


__all__ = [
    "ClipFrames",
    "answer_from_clips",
    "answer_video",
    "build_prompt",
    "clip_text",
    "decode_frames",
    "subtitle_context",
]
