"""Retrieval-augmented answers: retrieve, pack the context within a budget, generate, cite.

The context is the top hits' text, each under a numbered label (`[1] report.pdf p.4`), in rank
order until `context_chars` is spent. A generator that reads images (a VLM, or a bridge) also gets
the top image-like hits as pictures: the photo, the rendered PDF page, or a keyframe of the clip,
not only their text. The prompt (`prompts/ask.txt`) asks for citations by label and for
"Insufficient information" when the sources do not hold the answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.generate.loader import load_generator
from mmrag.ingest.render import hit_image
from mmrag.types import Hit

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import GenerateConfig

INSUFFICIENT = "Insufficient information"


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
    """An answer with the sources it was given, the labels it cites, and where the time went."""

    question: str
    text: str
    sources: list[Source] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model: str = ""

    @property
    def cited(self) -> list[int]:
        """Labels the answer cites (`[2]`, `[1, 3]`), in order of first mention."""
        found = [
            int(n) for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", self.text) for n in group.split(",")
        ]
        valid = {s.label for s in self.sources}
        return list(dict.fromkeys(n for n in found if n in valid))

    @property
    def insufficient(self) -> bool:
        return INSUFFICIENT.lower() in self.text.lower()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `contexts` and `answer` follow the field names ragas and deepeval read."""
        return {
            "question": self.question,
            "answer": self.text,
            "contexts": [s.hit.text or "" for s in self.sources],
            "cited": self.cited,
            "insufficient": self.insufficient,
            "sources": [s.to_dict() for s in self.sources],
            "timings": self.timings,
            "model": self.model,
        }


def pack_context(hits: Sequence[Hit], budget_chars: int) -> tuple[str, list[Source]]:
    """Numbered sources in rank order until the text budget is spent (the first is always kept)."""
    parts: list[str] = []
    sources: list[Source] = []
    used = 0
    for i, h in enumerate(hits, 1):
        src = Source(i, h)
        body = " ".join((h.text or ", ".join(h.payload.get("tags") or []) or "(no text)").split())
        head = f"[{i}] {Path(h.path).name} {src.locator()}".rstrip()
        room = budget_chars - used - len(head) - 2
        if sources and room < 80:
            break
        body = body[: max(room, 80)]
        parts.append(f"{head}\n{body}")
        used += len(head) + len(body) + 2
        sources.append(src)
    return "\n\n".join(parts), sources


def answer(
    question: str,
    hits: Sequence[Hit],
    cfg: GenerateConfig,
    query_images: Sequence[Image.Image] = (),
    on_token: Callable[[str], None] | None = None,
    prompt_dir: str | Path | None = None,
    t_retrieve: float = 0.0,
    t_rerank: float = 0.0,
) -> Answer:
    """Generate an answer to `question` from retrieved `hits` (already ranked).

    `t_retrieve` is the retrieval stage's wall time, reranking included, and `t_rerank` the
    reranker's share of it. The answer's `timings` split the call into disjoint stages, in seconds:
    `retrieve` (embed, search, fuse: `t_retrieve - t_rerank`), `rerank`, `load` (the generator, on
    its first use in the process), `pack` (context, images, prompt) and `generate`.
    """
    from mmrag.prompts import render_prompt

    t0 = time.perf_counter()
    gen = load_generator(cfg)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    context, sources = pack_context(hits, cfg.context_chars)
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
    if on_token is None:
        text = str(gen.generate(prompt, images, max_new_tokens=cfg.max_new_tokens))
    else:
        pieces = []
        for piece in gen.generate(prompt, images, max_new_tokens=cfg.max_new_tokens, stream=True):
            pieces.append(piece)
            on_token(piece)
        text = "".join(pieces).strip()
    timings = {
        "retrieve": max(t_retrieve - t_rerank, 0.0),
        "rerank": t_rerank,
        "load": t_load,
        "pack": t_pack,
        "generate": time.perf_counter() - t2,
    }
    return Answer(question, text, sources, {k: round(v, 4) for k, v in timings.items()}, gen.model_id)


__all__ = [
    "INSUFFICIENT",
    "Answer",
    "Source",
    "answer",
    "pack_context",
]
