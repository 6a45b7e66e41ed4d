"""A question answered from what retrieval finds: the hits of its query images first, then its own.

`Pipeline.ask` passes the retrieval functions in (`search_image` for each query image, `retrieve`
for the question: one search, or multi-hop, reranked or not), so this stage reads no index itself;
`answer` (`mmrag.answer.ask`) packs the context and generates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mmrag.answer.ask import answer
from mmrag.ingest.images import open_image

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.answer.ask import Answer
    from mmrag.config import GenerateConfig
    from mmrag.types import Hit


class Found(Protocol):
    """What a retrieval returns (`Retrieval`, `HopResult`): ranked hits and where the time went."""

    hits: list[Hit]
    timings: dict[str, float]


def answer_question(
    question: str,
    retrieve: Callable[[str], Found],
    search_image: Callable[[Image.Image], list[Hit]],
    cfg: GenerateConfig,
    images: Sequence[str | Path | Image.Image] = (),
    *,
    on_token: Callable[[str], None] | None = None,
    prompt_dir: str | Path | None = None,
) -> Answer:
    """Retrieve for `question` (and its images), then answer from the hits with their sources cited.

    Args:
        question: The question.
        retrieve: The question's retrieval (its `timings` hold the rerank time reported apart).
        search_image: Hits that look like a query image.
        cfg: The generator.
        images: Query images (paths or PIL images): searched, and shown to a generator that reads images.
        on_token: Called with each generated piece of text as it comes (streaming).
        prompt_dir: Folder of prompt templates overriding the packaged ones.
    """
    query_images = [open_image(im) for im in images]
    t0 = time.perf_counter()
    # With query images, what looks like them comes first (a question about a picture is mostly
    # generic text: "what is this?"), then what the question's text finds.
    hits: list[Hit] = []
    for img in query_images:
        hits += search_image(img)
    found = retrieve(question)
    first: dict[str, Hit] = {}
    for h in hits + found.hits:  # a point found twice stays where it first appears
        first.setdefault(h.id, h)
    return answer(
        question,
        list(first.values()),
        cfg,
        query_images,
        on_token=on_token,
        prompt_dir=prompt_dir,
        t_retrieve=time.perf_counter() - t0,
        t_rerank=found.timings.get("rerank", 0.0),
        unindexed=unindexed_of(found),
    )


def unindexed_of(found: Found) -> list[str]:
    """Publications the question attributes facts to that the index has none of (what retrieval read)."""
    filters = getattr(found, "filters", None) or {}
    return list(filters.get("unindexed_source", []))
