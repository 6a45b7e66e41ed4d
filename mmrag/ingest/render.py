"""The picture behind a hit: the photo, the rendered PDF page, or a keyframe of the clip."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from PIL import Image


def hit_image(hit: Hit) -> Image.Image | None:
    """The picture behind a hit: the photo, the rendered page, or the clip's first keyframe."""
    path = Path(hit.path)
    try:
        if hit.modality == "image":
            from mmrag.ingest.images import load_image

            return load_image(path)
        if hit.modality == "page" and hit.page is not None:
            import pypdfium2 as pdfium

            from mmrag.ingest.pdf import PDFIUM_LOCK

            with PDFIUM_LOCK:  # PDFium is not thread-safe: a server may be indexing at the same time
                pdf = pdfium.PdfDocument(str(path))
                try:
                    page = pdf[hit.page]
                    scale = 768 / max(page.get_width(), page.get_height())
                    return page.render(scale=scale).to_pil().convert("RGB")
                finally:
                    pdf.close()
        if hit.modality == "video" and hit.t_start is not None:
            return _frame_at(path, hit.t_start)
    except (OSError, ValueError, MMRAGError, ImportError):
        return None  # the file moved or broke since indexing: answer from its text alone
    return None


def _frame_at(path: Path, t: float) -> Image.Image | None:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.time_base is not None:
            container.seek(int(t / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= t - 1e-3:
                img: Image.Image = frame.to_image()
                return img
    return None
