"""Photos and scans into image chunks: upright, first frame, RGB, bounded in size.

The pixel count is checked from the header before any pixel is decoded, so a decompression bomb
(a small file that claims gigapixels) is refused cheaply. Large JPEGs are decoded at a reduced
scale (`draft`) and every image is kept at most `MAX_SIDE` pixels on its longest side: encoders
look at 224-448 px, and a batch of full-size 24-megapixel photos would hold gigabytes.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.types import Chunk, IngestError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import IngestConfig

MAX_SIDE = 1600
"""Longest side of a loaded image; enough for OCR, which reads at up to 2,000 px."""

_ERRORS = (OSError, SyntaxError, EOFError, ValueError)  # what Pillow's plugins raise on broken data


def load_image(path: Path, max_pixels: int | None = None, max_side: int | None = MAX_SIDE) -> Image.Image:
    """Open an image upright (EXIF orientation applied), at its first frame, as RGB.

    Transparent areas are laid on white; 16-bit and float images are scaled to 8 bits.

    Args:
        path: Image file.
        max_pixels: Refuse images whose header claims more pixels (default: `IngestConfig`'s).
        max_side: Shrink so the longest side is at most this (None keeps the full size).

    Raises:
        IngestError: unreadable, not an image, truncated, or over the pixel limit.
    """
    if max_pixels is None:
        from mmrag.config import IngestConfig

        max_pixels = IngestConfig().max_image_pixels
    return _load(path, max_pixels, max_side)[0]


def open_image(image: str | Path | Image.Image) -> Image.Image:
    """A query image: a PIL image as given, or a path opened with `load_image`."""
    if not isinstance(image, str | Path):
        return image
    return load_image(Path(image))


def _load(path: Path, max_pixels: int, max_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """`load_image`, plus the full upright size (width, height) before any shrinking."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns above its own global limit; ours (max_pixels) is the one that decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        # Pillow's own hard limit (twice Image.MAX_IMAGE_PIXELS) fired first: say it in our words
        m = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(m.group(1)) if m else None
        if pixels is not None and pixels > max_pixels:
            raise IngestError(_too_big(pixels, max_pixels)) from e
        raise IngestError(f"{e} (Pillow's limit: raise PIL.Image.MAX_IMAGE_PIXELS)") from e
    except UnidentifiedImageError as e:
        raise IngestError("not an image, or a format Pillow cannot read") from e
    except _ERRORS as e:
        raise IngestError(f"cannot read image: {e}") from e
    with im:
        fmt = im.format or "image"
        width, height = im.size
        if width * height > max_pixels:
            raise IngestError(_too_big(width * height, max_pixels))
        if max_side and fmt == "JPEG":
            im.draft("RGB", (max_side, max_side))  # DCT scaling: decode at 1/2, 1/4 or 1/8 size
        try:
            im.load()
            upright = ImageOps.exif_transpose(im)
        except _ERRORS as e:
            reason = f"truncated {fmt}" if "truncated" in str(e) else f"corrupt {fmt}"
            raise IngestError(f"{reason}: {e}") from e
        if upright.size != im.size:  # turned by 90 degrees
            width, height = height, width
    rgb = to_rgb(upright)
    if max_side and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb, (width, height)


def _too_big(pixels: int, max_pixels: int) -> str:
    return f"image has {pixels} pixels, over the {max_pixels} limit (decompression bomb?)"


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB copy of any Pillow mode: alpha composited on white, high bit depths scaled down."""
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        import numpy as np

        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.round().astype(np.uint8), mode="L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return im.convert("RGB")


def caption_for(path: Path) -> str | None:
    """Text of a `<stem>.txt` caption file beside the image, if there is one."""
    from mmrag.ingest.text import read_text

    sidecar = Path(path).with_suffix(".txt")
    if not sidecar.is_file():
        return None
    try:
        text = read_text(sidecar).strip()
    except IngestError:
        return None  # an unreadable caption does not make the image unreadable
    return text or None


def iter_image_chunks(
    path: Path, cfg: IngestConfig, ocr: Callable[[Image.Image], str] | None = None
) -> Iterator[Chunk]:
    """One `image` chunk: the upright RGB image, with its caption and OCR text as `text`.

    `meta` holds the original `width` and `height` (after EXIF rotation).
    """
    img, (width, height) = _load(path, cfg.max_image_pixels, MAX_SIDE)
    parts = [caption_for(path), ocr(img) if ocr is not None else None]
    text = "\n".join(p.strip() for p in parts if p and p.strip()) or None
    yield Chunk(
        modality="image", path=str(path), text=text, images=[img], meta={"width": width, "height": height}
    )
