"""Frames for video answers: a frame budget split across clips, frames decoded from a clip's time span.

A clip hit names its video file and its span; its frames are decoded from the file at evenly spaced
times inside the span. Clips indexed from a folder of frames instead (TVQA ships JPEG frames at 3
fps, no video) carry `frame_dir` in their payload, and their frames are read from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mmrag.ingest.frames import seek, stream_start
from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

FRAME_PX = 384
"""Longest side of decoded frames (the generators read 224-448 px)."""
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def split_frame_budget(budget: int, n_clips: int, strategy: Literal["even", "rank"] = "even") -> list[int]:
    """Frames per clip (clips in rank order) that add up to `budget`.

    Every clip gets at least one frame while the budget lasts (the top-ranked first); the rest is
    shared equally (`even`) or in proportion to 1/rank (`rank`), by largest remainder, ties going to
    the better rank. Shares never increase down the ranking.
    """
    if budget < 0 or n_clips < 0:
        raise MMRAGError("frame budget and clip count must not be negative")
    if n_clips == 0:
        return []
    if budget <= n_clips:
        return [1 if i < budget else 0 for i in range(n_clips)]
    if strategy == "even":
        weights = [1.0] * n_clips
    elif strategy == "rank":
        weights = [1.0 / (i + 1) for i in range(n_clips)]
    else:
        raise MMRAGError(f"unknown frame split {strategy!r}: use even or rank")
    spare = budget - n_clips  # one frame each first, then the spare frames by weight
    total = sum(weights)
    quotas = [spare * w / total for w in weights]
    shares = [1 + int(q) for q in quotas]
    left = budget - sum(shares)
    order = sorted(range(n_clips), key=lambda i: (-(quotas[i] - int(quotas[i])), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def frame_times(t_start: float, t_end: float, n: int) -> list[float]:
    """`n` times at the centres of `n` equal parts of the span."""
    if n <= 0:
        return []
    length = max(0.0, t_end - t_start)
    return [t_start + (i + 0.5) * length / n for i in range(n)]


def frames_for_clip(hit: Hit, n: int) -> list[tuple[float, Image.Image]]:
    """Up to `n` `(time, frame)` pairs of a clip hit, evenly spread over its span.

    Reads the payload's `frame_dir` when present, else decodes the video file. A file that moved or
    broke since indexing gives no frames (the answer then rests on the subtitles).
    """
    if n <= 0 or hit.t_start is None:
        return []
    t0 = hit.t_start
    t1 = hit.t_end if hit.t_end is not None else t0
    times = frame_times(t0, t1, n)
    folder = hit.payload.get("frame_dir")
    try:
        if folder:
            images = frames_from_folder(Path(folder), n)
            return list(zip(times, images, strict=False))
        return list(zip(times, sample_video_frames(Path(hit.path), times), strict=False))
    except (OSError, ValueError, MMRAGError, ImportError):
        return []


def frames_from_folder(folder: Path, n: int) -> list[Image.Image]:
    """`n` frame images picked evenly from a folder of frames (sorted by name)."""
    from PIL import Image as PILImage

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise MMRAGError(f"{folder}: no frame images")
    picks = [files[min(len(files) - 1, int((i + 0.5) * len(files) / n))] for i in range(n)]
    out = []
    for p in picks:
        with PILImage.open(p) as im:
            out.append(shrink(im.convert("RGB")))
    return out


def sample_video_frames(path: Path, times: list[float]) -> list[Image.Image]:
    """The frame shown at each of `times` (seconds from the first frame, ascending), decoded once.

    Seeks to the first time and decodes forward; a time past the last frame gets the last frame.
    """
    import av

    if not times:
        return []
    out: list[Image.Image] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream_start(stream)
        seek(container, stream, seconds=start + times[0])
        last: Any = None
        image: Image.Image | None = None
        for frame in container.decode(stream):
            t = (frame.time if frame.time is not None else 0.0) - start
            # a frame is shown until the next one starts: take the last frame at or before each time
            while len(out) < len(times) and t > times[len(out)] + 1e-6 and last is not None:
                image = image or shrink(last.to_image())  # convert only the frames that are kept
                out.append(image)
            if len(out) == len(times):
                break
            last, image = frame, None
        if last is not None and len(out) < len(times):
            image = image or shrink(last.to_image())
            out += [image] * (len(times) - len(out))
    return out


def shrink(img: Image.Image, px: int = FRAME_PX) -> Image.Image:
    """`img` scaled down (by area, aspect kept) so that its longest side is at most `px`."""
    from PIL import Image as PILImage

    scale = px / max(img.size)
    if scale >= 1:
        return img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, PILImage.Resampling.BOX)


__all__ = [
    "frame_times",
    "frames_for_clip",
    "frames_from_folder",
    "sample_video_frames",
    "shrink",
    "split_frame_budget",
]
