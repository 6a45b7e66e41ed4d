"""Captions for video clips from any image captioner, at index time or later on an existing index.

The captioner is a plain function `caption_fn(images) -> list[str]` (one caption per image), so any
VLM, a remote service or a test function fits; `vlm_caption_fn` wraps a `VLMGenerator`. Each clip is
captioned from one image: its middle frame, or (`how="grid"`) its frames tiled 2x2 so that one VLM
call sees the whole clip. The caption goes in the payload (`caption`) and at the end of the clip's
text, which the text and BM25 vectors read.

    chunks = caption_chunks(iter_chunks(path, cfg), caption_fn, batch_size=8)   # while indexing
    caption_clips(pipeline.store, pipeline.embedders, caption_fn)             # an existing index

On an existing index the frames are read again from the video at the payload's `frame_times` (the
video must still be where it was indexed); the image vector is kept, the text vectors are redone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mmrag.types import Chunk, IngestError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.encoders.embedders import Embedders
    from mmrag.store.base import Store

CaptionFn = Callable[[list["Image.Image"]], list[str]]
How = Literal["middle", "grid"]
CAPTION_PROMPT = "Describe what happens in this video frame in one sentence."


def clip_image(images: Sequence[Image.Image], how: How = "middle") -> Image.Image:
    """The one image a clip is captioned from: its middle frame, or its first four frames in a 2x2 grid."""
    from PIL import Image as PILImage

    if not images:
        raise ValueError("a clip without frames cannot be captioned")
    if how == "middle" or len(images) == 1:
        return images[len(images) // 2]
    tiles = list(images[:4])
    w, h = tiles[0].size
    grid = PILImage.new("RGB", (2 * w, h * ((len(tiles) + 1) // 2)))
    for k, tile in enumerate(tiles):
        grid.paste(tile.convert("RGB").resize((w, h)), ((k % 2) * w, (k // 2) * h))
    return grid


def with_caption(text: str | None, caption: str, old: str | None = None) -> str:
    """A clip's text with `caption` as its last line (replacing the `old` caption line if there)."""
    lines = (text or "").split("\n") if text else []
    if old and lines and lines[-1] == old:
        lines.pop()
    return "\n".join([*lines, caption]) if caption else "\n".join(lines)


def _captions(caption_fn: CaptionFn, images: list[Image.Image]) -> list[str]:
    captions = caption_fn(images)
    if len(captions) != len(images):
        raise ValueError(f"caption_fn returned {len(captions)} captions for {len(images)} images")
    return [" ".join(str(c).split()) for c in captions]


def caption_chunks(
    chunks: Iterable[Chunk], caption_fn: CaptionFn, batch_size: int = 8, how: How = "middle"
) -> Iterator[Chunk]:
    """Caption the video chunks of a chunk stream, `batch_size` clips per `caption_fn` call.

    Other chunks pass through; order is kept (at most `batch_size` video chunks wait).
    """
    waiting: list[Chunk] = []

    def flush() -> Iterator[Chunk]:
        videos = [c for c in waiting if c.modality == "video" and c.images]
        if videos:
            captions = _captions(caption_fn, [clip_image(c.images, how) for c in videos])
            for c, cap in zip(videos, captions, strict=True):
                if cap:
                    c.meta["caption"] = cap
                    c.text = with_caption(c.text, cap)
        yield from waiting
        waiting.clear()

    for chunk in chunks:
        waiting.append(chunk)
        if sum(c.modality == "video" for c in waiting) >= batch_size:
            yield from flush()
    yield from flush()


def caption_clips(
    store: Store,
    embedders: Embedders,
    caption_fn: CaptionFn,
    *,
    paths: Sequence[str] | None = None,
    batch_size: int = 8,
    how: How = "middle",
    overwrite: bool = False,
    on_video: Callable[[str, int], None] | None = None,
) -> int:
    """Caption the video clips already in an index and rewrite their points.

    Args:
        store: The index's store.
        embedders: The index's embedders (its text encoder redoes the text vector).
        caption_fn: Captions for a list of images.
        paths: Only these videos (payload `path`); None: every video in the store.
        batch_size: Clips per `caption_fn` call.
        how: `middle` frame or 2x2 `grid` of the clip's frames.
        overwrite: Caption clips that already have a caption again.
        on_video: Called with each video's path and the clips captioned in it.

    Returns:
        Clips captioned. Videos that can no longer be read are skipped (`on_video` gets -1).
    """
    from mmrag.store.base import SearchFilter

    if paths is None:
        paths = sorted({p["payload"]["path"] for p in store.scroll(SearchFilter(modalities=["video"]))})
    done = 0
    for path in paths:
        points = [
            p
            for p in store.scroll(SearchFilter(paths=[path], modalities=["video"]), with_vectors=True)
            if overwrite or not p["payload"].get("caption")
        ]
        if not points:
            continue
        try:
            written = _caption_video(store, embedders, caption_fn, path, points, batch_size, how)
        except IngestError:
            written = -1
        done += max(0, written)
        if on_video is not None:
            on_video(path, written)
    return done


def _caption_video(
    store: Store,
    emb: Embedders,
    caption_fn: CaptionFn,
    path: str,
    points: list[dict[str, Any]],
    batch_size: int,
    how: How,
) -> int:
    from mmrag.encoders.embedders import chunk_text
    from mmrag.ingest.frames import frames_at
    from mmrag.store.base import PointData, SparseVec

    times = [list(p["payload"].get("frame_times") or [p["payload"].get("t_start") or 0.0]) for p in points]
    flat = frames_at(Path(path), [t for ts in times for t in ts])
    images, pos = [], 0
    for ts in times:
        images.append(clip_image(flat[pos : pos + len(ts)], how))
        pos += len(ts)
    captions: list[str] = []
    for i in range(0, len(images), batch_size):
        captions += _captions(caption_fn, images[i : i + batch_size])
    payloads, texts = [], []
    for p, cap in zip(points, captions, strict=True):
        payload = dict(p["payload"])
        payload["text"] = with_caption(payload.get("text"), cap, old=payload.get("caption")) or None
        payload["caption"] = cap or None
        payloads.append(payload)
        chunk = Chunk(modality="video", path=path, text=payload["text"])
        texts.append(chunk_text(chunk, payload.get("tags")))
    text_vecs = emb.text.encode_text(texts, batch_size=batch_size) if emb.text is not None else None
    sparse = emb.bm25.embed_documents(texts)
    out = []
    for i, (p, payload) in enumerate(zip(points, payloads, strict=True)):
        vectors = p.get("vectors") or {}
        dense = {k: np.asarray(v, np.float32) for k, v in vectors.items() if not isinstance(v, SparseVec)}
        if text_vecs is not None:
            dense["text"] = text_vecs[i]
        out.append(PointData(p["id"], dense, sparse[i] if sparse[i].indices else None, payload))
    store.upsert(out)
    return len(out)


def vlm_caption_fn(generator: Any, prompt: str = CAPTION_PROMPT, max_new_tokens: int = 40) -> CaptionFn:
    """A `caption_fn` over any generator with `generate(prompt, images, max_new_tokens=...)` (a
    `VLMGenerator`, a `BridgeModel`): one greedy call per image."""

    def caption(images: list[Image.Image]) -> list[str]:
        return [str(generator.generate(prompt, [im], max_new_tokens=max_new_tokens)).strip() for im in images]

    return caption
