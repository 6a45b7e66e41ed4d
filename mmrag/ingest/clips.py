"""Cutting a video stream into clips: fixed windows (seeking to keyframes where that pays) or shots.

`mmrag.ingest.video` opens the file, scans its packets (`frames.scan_stream`) and turns each clip
into a chunk; this module decides the clips and picks their frames. The two ways to cut
(`ingest.segment`), and why memory stays flat, are in `mmrag.ingest.video`'s docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmrag.ingest.frames import (
    Slot,
    StreamScan,
    all_frames,
    frame_image,
    plan_steps,
    sampled_frames,
)
from mmrag.ingest.shots import (
    SIGNATURE_SIZE,
    Segment,
    ShotDetector,
    ShotWindows,
    fixed_windows,
    hsv_histogram,
)
from mmrag.types import IngestError, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import IngestConfig

SLOTS_PER_FRAME = 4
MIN_TAIL_SECONDS = 1.0
ANALYSIS_FPS = 10.0
"""Frames per second compared for cuts in `shots` mode (cut times are this precise)."""
THREADS_STREAMING = "AUTO"
"""PyAV `thread_type` when decoding on: frame threads keep every core busy."""
THREADS_SEEKING = "SLICE"
"""`thread_type` when most frames come after a seek: slice threads give the first frame after a
seek at once, frame threads must first fill their pipeline again (9 against 21 ms per seek and
frame on 2 idle cores; no difference measured on loaded ones)."""


@dataclass
class VideoInfo:
    """What the header says (duration None when unknown even after scanning)."""

    fps: float | None
    width: int
    height: int
    duration: float | None


@dataclass
class Clip:
    """A finished clip: `[t0, t1)`, the kept frames with their times, and its shot (shot mode)."""

    index: int
    t0: float
    t1: float
    frames: list[tuple[float, Image.Image]] = field(default_factory=list)
    shot: int | None = None


@dataclass
class VideoSettings:
    length: float
    overlap: float
    n: int
    segment: str
    threshold: float
    min_shot: float
    sampling: str
    language: str | None

    @property
    def tail(self) -> float:
        return min(MIN_TAIL_SECONDS, self.length / 4)


def video_settings(cfg: IngestConfig) -> VideoSettings:
    """Video settings of an ingest config; fields a config predates take their defaults."""
    s = VideoSettings(
        length=float(cfg.clip_seconds),
        overlap=float(getattr(cfg, "clip_overlap", 0.0) or 0.0),
        n=int(cfg.frames_per_clip),
        segment=str(getattr(cfg, "segment", "fixed")),
        threshold=float(getattr(cfg, "shot_threshold", 0.5)),
        min_shot=float(getattr(cfg, "min_shot_seconds", 1.0)),
        sampling=str(getattr(cfg, "video_sampling", "auto")),
        language=getattr(cfg, "subtitle_language", None),
    )
    if s.length <= 0 or s.n < 1:
        raise MMRAGError("clip_seconds must be > 0 and frames_per_clip >= 1")
    if not 0 <= s.overlap < s.length:
        raise MMRAGError(f"clip_overlap must be >= 0 and < clip_seconds (got {s.overlap})")
    if s.segment not in ("fixed", "shots") or s.sampling not in ("auto", "decode"):
        raise MMRAGError(f"unknown segment {s.segment!r} or video_sampling {s.sampling!r}")
    return s


def video_info(container: Any, stream: Any) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    return VideoInfo(float(rate) if rate else None, stream.width, stream.height, duration or None)


def stream_length(container: Any, stream: Any) -> float | None:
    """The video stream's length as the header states it, or None.

    Only the stream's own length tells a truncated file apart from one whose audio runs on: MP4
    states it, Matroska in a `DURATION` tag; the container's length counts only when the video is
    its only audio or video stream.
    """
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    if tag:
        try:
            h, m, sec = str(tag).split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            pass
    if container.duration and len(container.streams.video) + len(container.streams.audio) == 1:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _pick(frames: list[tuple[float, Image.Image]], n: int) -> list[tuple[float, Image.Image]]:
    """`n` frames spread evenly over the kept ones (all of them when there are fewer)."""
    if len(frames) <= n:
        return frames
    return [frames[min(len(frames) - 1, int((k + 0.5) * len(frames) / n))] for k in range(n)]


# --- fixed windows: a few planned frames per window -------------------------------------------


class _Window:
    """A fixed window being filled. Per slot: the frame on screen at its centre (the last starting
    at or before it) if it starts inside the slot, else the first one after the centre. Frames are
    kept as decoder frames and converted once, when the window closes."""

    def __init__(self, index: int, t0: float, t1: float, n: int) -> None:
        self.index, self.t0, self.t1 = index, t0, t1
        width = (t1 - t0) / n
        self.slots = [Slot(t0 + k * width, t0 + (k + 1) * width, t0 + (k + 0.5) * width) for k in range(n)]
        self.kept: list[tuple[float, Any] | None] = [None] * n

    def offer(self, t: float, frame: Any) -> None:
        for k, s in enumerate(self.slots):
            if s.s0 - 1e-6 <= t < s.s1:
                held = self.kept[k]
                if held is None or t <= s.centre + 1e-6:
                    self.kept[k] = (t, frame)

    def close(self, last: tuple[float, Any] | None, convert: Callable[[float, Any], Image.Image]) -> Clip:
        kept = [c for c in self.kept if c is not None]
        self.kept = []  # decoder frames are full size: hold none past the window
        if not kept and last is not None:
            kept = [last]  # nothing new on screen during the window: the last frame stays
        return Clip(self.index, self.t0, self.t1, [(t, convert(t, f)) for t, f in kept])


def fixed_clips(av: Any, container: Any, stream: Any, scan: StreamScan, st: VideoSettings) -> Iterator[Clip]:
    windows = [
        _Window(i, t0, t1, st.n)
        for i, (t0, t1) in enumerate(fixed_windows(scan.end, st.length, st.overlap, st.tail))
    ]
    slots = sorted((s for w in windows for s in w.slots), key=lambda s: (s.s0, s.s1))
    steps = plan_steps(slots, scan, seeks=st.sampling != "decode" and bool(scan.keyframes))
    seeks = sum(s.seek is not None for s in steps)
    stream.thread_type = THREADS_SEEKING if seeks > len(steps) / 2 else THREADS_STREAMING
    if st.sampling == "decode":
        frames = all_frames(av, container, stream, scan.start, scan.fps)
    else:
        frames = sampled_frames(av, container, stream, steps, scan.start)
    opened: list[_Window] = []
    nxt = 0
    last: tuple[float, Any] | None = None
    converted: dict[float, Image.Image] = {}  # overlapping windows share frames: convert each once

    def convert(t: float, frame: Any) -> Image.Image:
        if t not in converted:
            while len(converted) > 4 * st.n:
                converted.pop(next(iter(converted)))
            converted[t] = frame_image(frame)
        return converted[t]

    for t, frame in frames:
        while opened and opened[0].t1 <= t:
            yield opened.pop(0).close(last, convert)
        while nxt < len(windows) and windows[nxt].t0 <= t + 1e-6:
            w = windows[nxt]
            nxt += 1
            if w.t1 <= t:
                yield w.close(last, convert)  # a window with no frame of its own (a gap in the frames)
            else:
                opened.append(w)
        for w in opened:
            w.offer(t, frame)
        last = (t, frame)
    if last is None:
        raise IngestError("no video frame could be decoded")
    for w in [*opened, *windows[nxt:]]:
        yield w.close(last, convert)


# --- shots (or streams without timestamps): decode everything, clips found online --------------


class _Filling:
    """The clip being filled online: the first frame of each slot, converted at once."""

    def __init__(self, seg: Segment, slot_seconds: float) -> None:
        self.seg, self.slot_seconds = seg, slot_seconds
        self.frames: list[tuple[float, Image.Image]] = []
        self.slots: set[int] = set()

    def offer(self, t: float, frame: Any) -> None:
        slot = int((t - self.seg.t0) / self.slot_seconds)
        if slot not in self.slots:
            self.slots.add(slot)
            self.frames.append((t, frame_image(frame)))

    def close(self, n: int, last: list[tuple[float, Image.Image]]) -> Clip:
        return Clip(self.seg.index, self.seg.t0, self.seg.t1, _pick(self.frames, n) or last, self.seg.shot)


def _fold(held: Clip | None, clip: Clip, tail: float, any_shot: bool) -> Generator[Clip, None, Clip]:
    """Yield the held clip unless `clip` is a sliver (under `tail`) of its shot, folded into it."""
    if held is not None and clip.t1 - clip.t0 < tail and (any_shot or held.shot == clip.shot):
        held.t1 = clip.t1
        return held
    if held is not None:
        yield held
    return clip


def online_clips(
    av: Any, container: Any, stream: Any, info: VideoInfo, scan: StreamScan, st: VideoSettings
) -> Iterator[Clip]:
    stream.thread_type = THREADS_STREAMING
    windows = ShotWindows(st.length)
    detector = ShotDetector(st.threshold, st.min_shot) if st.segment == "shots" else None
    slot_seconds = st.length / (st.n * SLOTS_PER_FRAME)
    filling = _Filling(windows.current, slot_seconds)
    last: list[tuple[float, Image.Image]] = []
    held: Clip | None = None
    next_look = end = 0.0
    for t, frame in all_frames(av, container, stream, scan.start if scan.frames else None, info.fps or 0.0):
        cut = False
        if detector is not None and t >= next_look - 1e-3:
            small = frame.reformat(width=SIGNATURE_SIZE[0], height=SIGNATURE_SIZE[1], format="rgb24")
            cut = detector.push(t, hsv_histogram(small.to_ndarray()))
            next_look = t + 1.0 / ANALYSIS_FPS
        for seg in windows.advance(t, cut):
            clip = filling.close(st.n, last) if seg is filling.seg else Clip(seg.index, seg.t0, seg.t1, last)
            last = clip.frames
            held = yield from _fold(held, clip, st.tail, any_shot=False)
        if filling.seg is not windows.current:
            filling = _Filling(windows.current, slot_seconds)
        filling.offer(t, frame)
        shown = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else 0.0
        end = t + (shown or (1.0 / info.fps if info.fps else 0.0))
    if info.duration and end < 0.9 * info.duration - 1.0:
        raise IngestError(f"truncated video: frames stop at {end:.1f} s of {info.duration:.1f} s")
    filling.seg.t1 = max(filling.seg.t0, min(filling.seg.t1, max(end, scan.end)))
    held = yield from _fold(held, filling.close(st.n, last), st.tail, any_shot=True)
    yield held


# --- chunks --------------------------------------------------------------------------------------
