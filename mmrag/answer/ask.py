"""Retrieval-augmented answers: retrieve, pack the context within a budget, generate, check citations.

Packing (`pack_context`) turns ranked hits into numbered sources (`[1] report.pdf p.4`): one source
per (file, page) or (file, time range), so a page point and its text chunks become one source that
keeps the best-scoring text and the page image once; sources in score order; a source whose text
is already inside another's is dropped; the character budget is filled in that order. What was
merged or left out is reported in `Answer.dropped`.

A generator that reads images (a VLM, or a bridge) also gets the top image-like sources as
pictures: the photo, the rendered PDF page, or a keyframe of the clip, not only their text. The
prompt (`prompts/ask.txt`) asks for a label after each claim and for "Insufficient information"
when the sources do not hold the answer; `mmrag.answer.cite` checks the labels afterwards.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.answer.cite import INSUFFICIENT, check_citations
from mmrag.answer.forms import answer_openings
from mmrag.generate.loader import load_generator
from mmrag.generate.stopping import generation_options
from mmrag.ingest.render import hit_image
from mmrag.types import Hit

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.answer.cite import Citations
    from mmrag.config import GenerateConfig


@dataclass
class Source:
    """A retrieved hit as the answer cites it."""

    label: int
    hit: Hit
    used_image: bool = False

    def locator(self) -> str:
        return self.hit.locator()

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.hit.to_dict().items() if k != "payload"}
        return {"label": self.label, "locator": self.locator(), "used_image": self.used_image, **d}


@dataclass
class Answer:
    """An answer with the sources it was given, the labels it cites, and where the time went.

    `dropped` lists the retrieved hits that did not become a source of their own, each with the
    reason: merged into a source of the same page or time range, the same text as a source, or
    over the context budget.
    """

    question: str
    text: str
    sources: list[Source] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model: str = ""
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def citations(self) -> Citations:
        return check_citations(self.text, [s.label for s in self.sources])

    @property
    def cited(self) -> list[int]:
        """Existing labels the answer cites (`[2]`, `[1, 3]`), in order of first mention."""
        return self.citations().cited

    @property
    def invalid_labels(self) -> list[int]:
        """Labels the answer cites that no source has."""
        return self.citations().invalid

    @property
    def uncited_sentences(self) -> list[str]:
        """Sentences that claim something without a label."""
        return self.citations().uncited_sentences

    @property
    def insufficient(self) -> bool:
        return INSUFFICIENT.lower() in self.text.lower()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `contexts` and `answer` follow the field names ragas and deepeval read."""
        c = self.citations()
        return {
            "question": self.question,
            "answer": self.text,
            "contexts": [s.hit.text or "" for s in self.sources],
            "cited": c.cited,
            "invalid_labels": c.invalid,
            "uncited_sentences": c.uncited_sentences,
            "insufficient": self.insufficient,
            "sources": [s.to_dict() for s in self.sources],
            "dropped": self.dropped,
            "timings": self.timings,
            "model": self.model,
        }


def source_key(hit: Hit) -> tuple[Any, ...]:
    """What makes two hits the same source: (file, page), (file, time range), or the point itself."""
    if hit.page is not None:
        return (hit.path, "page", hit.page)
    if hit.t_start is not None:
        return (hit.path, "time", round(hit.t_start, 3), round(hit.t_end or hit.t_start, 3))
    return (hit.path, "point", hit.id)


def _body(hit: Hit) -> str:
    return " ".join((hit.text or ", ".join(hit.payload.get("tags") or []) or "").split())


def merge_hits(hits: Sequence[Hit]) -> tuple[list[Hit], list[dict[str, Any]]]:
    """One hit per source (`source_key`), best score first, and the hits merged away.

    A merged hit has the best score of its group and the best-scoring text; when the group holds
    an image-like point (a page render, a photo, a clip), the merged hit is that point, so the
    picture is kept once. Hits come in ranked order; equal scores keep it.
    """
    groups: dict[tuple[Any, ...], list[Hit]] = {}
    for h in hits:
        groups.setdefault(source_key(h), []).append(h)
    merged: list[Hit] = []
    dropped: list[dict[str, Any]] = []
    for members in groups.values():
        best = max(members, key=lambda h: h.score)
        text_hit = max((h for h in members if _body(h)), key=lambda h: h.score, default=best)
        pictured = next((h for h in members if h.modality in ("page", "image", "video")), best)
        merged.append(replace(pictured, score=best.score, text=text_hit.text))
        why = f"merged into {Path(pictured.path).name} {pictured.locator() or pictured.id}"
        dropped += [_dropped(h, why) for h in members if h is not pictured]
    merged.sort(key=lambda h: -h.score)
    return merged, dropped


def _what(hit: Hit) -> str:
    return "page" if hit.page is not None else "time range" if hit.t_start is not None else "point"


def _dropped(hit: Hit, reason: str) -> dict[str, Any]:
    return {"id": hit.id, "path": hit.path, "locator": hit.locator(), "score": hit.score, "reason": reason}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def pack_context(
    hits: Sequence[Hit], budget_chars: int, dropped: list[dict[str, Any]] | None = None
) -> tuple[str, list[Source]]:
    """Numbered sources, one per page or time range, by score, until the text budget is spent.

    The first source is always kept. A source whose text is already inside a kept source's text
    adds nothing and is skipped; so are sources that no longer fit (at least 80 characters of text
    each). Everything left out is appended to `dropped` with the reason.
    """
    merged, gone = merge_hits(hits)
    parts: list[str] = []
    sources: list[Source] = []
    seen: list[str] = []
    used = 0
    for h in merged:
        body = _body(h) or "(no text)"
        norm = _norm(body)
        twin = next((i for i, t in enumerate(seen) if norm and norm in t), None)
        if twin is not None:
            gone.append(_dropped(h, f"same text as [{sources[twin].label}]"))
            continue
        label = len(sources) + 1
        head = f"[{label}] {source_title(h)}"
        room = budget_chars - used - len(head) - 2
        if sources and room < 80:
            gone.append(_dropped(h, "over the context budget"))
            continue
        body = body[: max(room, 80)]
        parts.append(f"{head}\n{body}")
        used += len(head) + len(body) + 2
        sources.append(Source(label, h))
        seen.append(norm)
    if dropped is not None:
        dropped.extend(gone)
    return "\n\n".join(parts), sources


def source_title(hit: Hit) -> str:
    """How a source is named to the model: a record's title with its source and date when the payload
    has them (`Rate cut ahead (Reuters, 2023-11-30)`), else the file name and locator (`r.pdf p.4`)."""
    p = hit.payload
    title = str(p.get("title") or "").strip()
    if not title:
        return f"{Path(hit.path).name} {hit.locator()}".rstrip()
    date = str(p.get("published_date") or p.get("published_at") or p.get("date") or "")[:10]
    extra = ", ".join(str(x) for x in (p.get("source"), date) if x)
    return f"{title} ({extra})" if extra else title


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def duplicate_sources(sources: Sequence[Source]) -> int:
    """Sources that repeat an earlier one: the same page or time range, or text inside its text."""
    keys: set[tuple[Any, ...]] = set()
    texts: list[str] = []
    dup = 0
    for s in sources:
        key, norm = source_key(s.hit), _norm(s.hit.text or "")
        if key in keys or (norm and any(norm in t or t in norm for t in texts if t)):
            dup += 1
        keys.add(key)
        texts.append(norm)
    return dup


def answer(
    question: str,
    hits: Sequence[Hit],
    cfg: GenerateConfig,
    query_images: Sequence[Image.Image] = (),
    on_token: Callable[[str], None] | None = None,
    prompt_dir: str | Path | None = None,
    t_retrieve: float = 0.0,
    t_rerank: float = 0.0,
    unindexed: Sequence[str] = (),
) -> Answer:
    """Generate an answer to `question` from retrieved `hits` (already ranked).

    With no source and no image to read, the answer is "Insufficient information." without asking
    the model. So it is when the question attributes its facts to publications that nothing indexed
    comes from (`unindexed`, read by retrieval: `Retrieval.filters["unindexed_source"]`) and
    `cfg.refuse_unindexed` is on: the answer names them, and the sources found are still listed.

    `t_retrieve` is the retrieval stage's wall time, reranking included, and `t_rerank` the
    reranker's share of it. The answer's `timings` split the call into disjoint stages, in seconds:
    `retrieve` (embed, search, fuse: `t_retrieve - t_rerank`), `rerank`, `load` (the generator, on
    its first use in the process), `pack` (context, images, prompt) and `generate`.
    """
    from mmrag.prompts import render_prompt

    refuse = getattr(cfg, "refuse_unindexed", True) and bool(unindexed)
    t0 = time.perf_counter()
    gen = None if refuse else load_generator(cfg)  # a refusal needs no model
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    dropped: list[dict[str, Any]] = []
    context, sources = pack_context(hits, cfg.context_chars, dropped)
    if gen is None:
        text = f"{INSUFFICIENT}: nothing indexed comes from {_names(unindexed)}."
        if on_token is not None:
            on_token(text)
        stages = _timings(t_retrieve, t_rerank, 0.0, time.perf_counter() - t1, 0.0)
        return Answer(question, text, sources, stages, cfg.model, dropped)
    images = list(query_images)
    if gen.reads_images:
        for s in sources:
            if len(images) >= cfg.max_images:
                break
            img = hit_image(s.hit) if s.hit.modality in ("image", "page", "video") else None
            if img is not None:
                images.append(img)
                s.used_image = True
    else:
        images = []
    prompt = render_prompt(
        "ask", question=question, context=context or "(no sources found)", prompt_dir=prompt_dir
    )
    t_pack = time.perf_counter() - t1
    t2 = time.perf_counter()
    opts = generation_options(cfg)
    if getattr(cfg, "label_every_sentence", True):
        opts["cite_labels"] = len(sources)  # 0: no label may be written
    openings = answer_openings(question, getattr(cfg, "answer_first", True))
    if openings and sources:
        opts["answer_starts"] = openings  # Yes, No or the refusal first
    if not sources and not images:
        text = f"{INSUFFICIENT}."  # nothing to answer from: a model would only guess
        if on_token is not None:
            on_token(text)
    elif on_token is None:
        text = str(gen.generate(prompt, images, **opts))
    else:
        pieces = []
        for piece in gen.generate(prompt, images, stream=True, **opts):
            pieces.append(piece)
            on_token(piece)
        text = "".join(pieces).strip()
    stages = _timings(t_retrieve, t_rerank, t_load, t_pack, time.perf_counter() - t2)
    return Answer(question, text, sources, stages, gen.model_id, dropped)


def _timings(
    t_retrieve: float, t_rerank: float, load: float, pack: float, generate: float
) -> dict[str, float]:
    stages = {"retrieve": max(t_retrieve - t_rerank, 0.0), "rerank": t_rerank, "load": load}
    return {k: round(v, 4) for k, v in (stages | {"pack": pack, "generate": generate}).items()}


__all__ = [
    "INSUFFICIENT",
    "Answer",
    "Source",
    "answer",
    "duplicate_sources",
    "merge_hits",
    "pack_context",
    "source_key",
]
