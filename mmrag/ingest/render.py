"""The picture behind a hit: the photo, the rendered PDF page, or a keyframe of the clip."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

PAGE_PX = 768
"""Longest side of a page hit's picture."""


def hit_image(hit: Hit) -> Image.Image | None:
    """The picture behind a hit: the photo, the rendered page, or the clip's first keyframe."""
    path = Path(hit.path)
    try:
        if hit.modality == "image":
            from mmrag.ingest.images import load_image

            return load_image(path)
        if hit.modality == "page" and hit.page is not None:
            from mmrag.ingest.pdf import render_page

            return render_page(path, hit.page, PAGE_PX)  # under the PDFium lock: a server may be indexing
        if hit.modality == "video" and hit.t_start is not None:
            return _frame_at(path, hit.t_start)
    except (OSError, ValueError, MMRAGError, ImportError):
        return None  # the file moved or broke since indexing: answer from its text alone
    return None


def _frame_at(path: Path, t: float) -> Image.Image | None:
    """The first frame at or after `t` seconds from the video's first frame (how clip times count)."""
    import av

    from mmrag.ingest.frames import seek, stream_start

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream_start(stream)
        seek(container, stream, seconds=start + t)
        for frame in container.decode(stream):
            if frame.time is None or frame.time - start >= t - 1e-3:
                img: Image.Image = frame.to_image()
                return img
    return None
