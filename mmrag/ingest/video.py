"""Videos (and animated GIFs) into clip chunks with PyAV, streaming.

Frames are decoded in order and a clip of `clip_seconds` is yielded as soon as the first frame past
its end arrives, so memory holds at most one clip's kept frames, downscaled to `FRAME_PX`. Inside a
clip the first frame of each of `frames_per_clip * SLOTS_PER_FRAME` equal time slots is kept; when
the clip closes, `frames_per_clip` of them are picked evenly (fewer when the clip has fewer frames).
The clip's text is the sidecar subtitles (`<stem>.srt` / `<stem>.vtt`) shown during it.

Times are seconds from the first frame. A last clip shorter than `MIN_TAIL_SECONDS` (or a quarter
clip) is merged into the one before. Streams without a duration in their header (some WebM) are
measured first by reading their packets without decoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.ingest.subtitles import Cue, cues_between, find_subtitles, read_subtitles
from mmrag.types import Chunk, IngestError, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import IngestConfig

FRAME_PX = 384
"""Longest side of kept frames (encoders read 224-448 px)."""
SLOTS_PER_FRAME = 4
MIN_TAIL_SECONDS = 1.0


@dataclass
class VideoInfo:
    """What the header says (duration None when unknown even after measuring)."""

    fps: float | None
    width: int
    height: int
    duration: float | None


@dataclass
class _Clip:
    index: int
    t0: float
    slot_seconds: float
    frames: list[tuple[float, Image.Image]] = field(default_factory=list)
    slots: set[int] = field(default_factory=set)


def _av() -> Any:
    try:
        import av
    except ImportError as e:
        raise MMRAGError("reading videos needs PyAV: pip install av") from e
    return av


def _info(container: Any, stream: Any) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    return VideoInfo(float(rate) if rate else None, stream.width, stream.height, duration or None)


def _measure_duration(av: Any, path: Path) -> float | None:
    """Length of the first video stream from its packets' timestamps (no decoding)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        first = last = None
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            first = packet.pts if first is None else min(first, packet.pts)
            last = max(last or packet.pts, packet.pts + (packet.duration or 0))
    return float((last - first) * tb) if first is not None and last is not None and tb else None


def _frame_image(frame: Any) -> Image.Image:
    """Downscaled RGB image of a frame, turned upright by its display matrix."""
    from PIL import Image as PILImage

    scale = min(1.0, FRAME_PX / max(frame.width, frame.height))
    w, h = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
    img = frame.to_image(width=w, height=h, interpolation="AREA")
    rotation = round(getattr(frame, "rotation", 0) or 0) % 360  # counterclockwise degrees
    turns = {
        90: PILImage.Transpose.ROTATE_90,
        180: PILImage.Transpose.ROTATE_180,
        270: PILImage.Transpose.ROTATE_270,
    }
    return img.transpose(turns[rotation]) if rotation in turns else img


def _pick(frames: list[tuple[float, Image.Image]], n: int) -> list[Image.Image]:
    """`n` frames spread evenly over the kept ones (all of them when there are fewer)."""
    if len(frames) <= n:
        return [img for _, img in frames]
    return [frames[min(len(frames) - 1, int((k + 0.5) * len(frames) / n))][1] for k in range(n)]


def _decode_clips(
    container: Any, stream: Any, info: VideoInfo, cfg: IngestConfig
) -> Iterator[tuple[float, float, list[Image.Image]]]:
    """(t_start, t_end, frames) per clip, in order; a clip with no frame of its own repeats the last one."""
    av = _av()
    length, n = cfg.clip_seconds, cfg.frames_per_clip
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
    # only the video stream's own duration tells truncation apart from a longer audio track
    expected = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
    max_kept = 2 * n * SLOTS_PER_FRAME  # bounds memory when a wrong duration makes slots tiny
    clip: _Clip | None = None
    last_images: list[Image.Image] = []
    t = end = 0.0
    try:
        for count, frame in enumerate(container.decode(stream)):
            t = frame.time if frame.time is not None else count / (info.fps or 25.0)
            if start is None:
                start = t
            t = max(0.0, t - start)
            k = int(t // length)
            if clip is not None and k > clip.index:
                last_images = _pick(clip.frames, n)
                yield clip.t0, (clip.index + 1) * length, last_images
                for gap in range(clip.index + 1, k):  # nothing new on screen: the last frame stays
                    yield gap * length, (gap + 1) * length, last_images
                clip = None
            if clip is None:
                t0 = k * length
                span = min(length, info.duration - t0) if info.duration and info.duration > t0 else length
                clip = _Clip(k, t0, span / (n * SLOTS_PER_FRAME))
            slot = int((t - clip.t0) / clip.slot_seconds)
            if slot not in clip.slots and len(clip.frames) < max_kept:
                clip.slots.add(slot)
                clip.frames.append((t, _frame_image(frame)))
            shown = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else 0.0
            end = t + (shown or (1.0 / info.fps if info.fps else 0.0))
    except av.error.FFmpegError as e:
        where = f"after {t:.2f} s" if clip is not None else "at the first frame"
        raise IngestError(f"corrupt video: decoding failed {where}: {e}") from e
    if clip is None:
        raise IngestError("no video frame could be decoded")
    if expected and end < 0.9 * expected - 1.0:
        raise IngestError(f"truncated video: frames stop at {end:.1f} s of {expected:.1f} s")
    t_end = min((clip.index + 1) * length, max(end, info.duration or 0.0))
    yield clip.t0, max(t_end, clip.t0), _pick(clip.frames, n)


def _merge_short_tail(
    clips: Iterator[tuple[float, float, list[Image.Image]]], min_seconds: float
) -> Iterator[tuple[float, float, list[Image.Image]]]:
    """Pass clips through one late; a last clip shorter than `min_seconds` extends the one before."""
    held: list[tuple[float, float, list[Image.Image]]] = []
    for clip in clips:
        held.append(clip)
        if len(held) > 2:
            yield held.pop(0)
    if len(held) == 2 and held[1][1] - held[1][0] < min_seconds:
        (t0, _, frames), (_, t1, _) = held
        held = [(t0, t1, frames)]
    yield from held


def iter_video_chunks(path: Path, cfg: IngestConfig) -> Iterator[Chunk]:
    """One `video` chunk per clip: `t_start`/`t_end`, sampled frames, subtitle text.

    Locators are `t=<start>-<end>` with millisecond precision; `meta` holds `fps`, `width`,
    `height` (as displayed) and `duration`.

    Raises:
        IngestError: not a video, no video stream, corrupt or truncated.
    """
    av = _av()
    if cfg.clip_seconds <= 0 or cfg.frames_per_clip < 1:
        raise MMRAGError("clip_seconds must be > 0 and frames_per_clip >= 1")
    sidecar = find_subtitles(path)
    cues: list[Cue] = read_subtitles(sidecar) if sidecar is not None else []
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise IngestError(f"not a video or corrupt: {e}") from e
    with container:
        if not container.streams.video:
            if not container.streams.audio and container.duration is None:
                # an MP4 cut before its index (moov) opens with no usable stream at all
                raise IngestError("no audio or video stream found: truncated, or not a video")
            raise IngestError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        info = _info(container, stream)
        if info.duration is None:
            info.duration = _measure_duration(av, path)
        meta: dict[str, Any] = {
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "duration": info.duration,
        }
        tail = min(MIN_TAIL_SECONDS, cfg.clip_seconds / 4)
        clips = _merge_short_tail(_decode_clips(container, stream, info, cfg), tail)
        for t0, t1, images in clips:
            if images and (images[0].width > images[0].height) != (info.width > info.height):
                # a display matrix turned the frames by 90 degrees: report the size as shown
                meta["width"], meta["height"] = info.height, info.width
            text = cues_between(cues, t0, t1) if cues else ""
            yield Chunk(
                modality="video",
                path=str(path),
                locator=f"t={t0:.3f}-{t1:.3f}",
                text=text or None,
                images=images,
                t_start=t0,
                t_end=t1,
                meta=dict(meta),
            )
