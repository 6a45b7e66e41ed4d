"""Getting frames out of a video cheaply: one packet scan, then seeks or straight decoding.

`scan_stream` reads every packet of the video stream once without decoding (about 0.05 s for ten
minutes of 720p H.264 here): it yields the true length (the last packet's end, which also tells a
truncated file from its header), the keyframe positions and the frame count, and decodes the
subtitle stream on the way. Memory: a float per keyframe and one `Cue` per subtitle.

A clip needs only a few frames, each anywhere inside a time slot (ideally at its centre). Decoding
every frame costs the same whatever is kept; a seek lands on a keyframe and decodes from there, so
it pays one decoder restart. `plan_steps` walks the slots in time order and, for each, takes the
cheapest of: decode on from where the decoder stands to the slot's centre; seek to a keyframe
inside the slot and take it (one frame); seek to the last keyframe before the centre and decode up
to it. Costs are counted in frames (time x mean frame rate) plus `SEEK_COST_FRAMES` per seek, so a
plan never decodes more frames than decoding everything would; dense keyframes (short GOPs, scene
cuts) and sparse slots make it much cheaper. `sampled_frames` runs a plan; `all_frames` decodes all.

`frames_at` reads the frames at given times again after indexing (a clip's payload keeps its
`frame_times`), by the same plan; `frame_image` turns a decoded frame into an upright, downscaled
RGB image. `seek` is the one way any module moves a PyAV decoder.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.ingest.subtitles import Cue, embedded_cues, subtitle_stream
from mmrag.types import IngestError, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

FRAME_PX = 384
"""Longest side of kept frames (encoders read 224-448 px)."""
SEEK_COST_FRAMES = 8.0
"""What a seek costs in decoded frames: on 2 idle cores a seek and its first 720p H.264 frame took
9 ms (slice threads) to 21 ms (frame threads, whose pipeline refills) against 2-3.5 ms per frame
decoded on."""
_EPS = 1e-6


def load_av() -> Any:
    """The `av` module, or an error naming the package to install."""
    try:
        import av
    except ImportError as e:
        raise MMRAGError("reading videos needs PyAV: pip install av") from e
    return av


def open_video(av: Any, path: Path) -> tuple[Any, Any]:
    """The container and its first video stream, with the reasons a file is not a readable video."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise IngestError(f"not a video or corrupt: {e}") from e
    if not container.streams.video:
        no_streams = not container.streams.audio and container.duration is None
        container.close()
        if no_streams:
            # an MP4 cut before its index (moov) opens with no usable stream at all
            raise IngestError("no audio or video stream found: truncated, or not a video")
        raise IngestError("no video stream")
    return container, container.streams.video[0]


def stream_start(stream: Any) -> float:
    """The stream's start time in seconds, from its header (0 when unknown); clip times count from it."""
    tb = stream.time_base
    return float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0


def seek(container: Any, stream: Any, *, pts: int | None = None, seconds: float | None = None) -> None:
    """Move the decoder to the last keyframe at or before a position, so that decoding on reaches it.

    The position is a stream timestamp `pts` (a keyframe's, from `scan_stream`, lands on that
    keyframe) or `seconds` on the stream's own clock (what `frame.time` reads: add `stream_start` to a
    time counted from the first frame). A stream without a time base is not moved.
    """
    if (pts is None) == (seconds is None):
        raise ValueError("seek: give exactly one of pts and seconds")
    if pts is None:
        if seconds is None or stream.time_base is None:
            return
        pts = int(seconds / stream.time_base)
    container.seek(pts, stream=stream, backward=True, any_frame=False)


def frame_image(frame: Any, px: int = FRAME_PX) -> Image.Image:
    """Downscaled RGB image of a frame (longest side at most `px`), turned upright by its display matrix."""
    from PIL import Image as PILImage

    scale = min(1.0, px / max(frame.width, frame.height))
    w, h = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
    img = frame.to_image(width=w, height=h, interpolation="AREA")
    rotation = round(getattr(frame, "rotation", 0) or 0) % 360  # counterclockwise degrees
    turns = {
        90: PILImage.Transpose.ROTATE_90,
        180: PILImage.Transpose.ROTATE_180,
        270: PILImage.Transpose.ROTATE_270,
    }
    return img.transpose(turns[rotation]) if rotation in turns else img


@dataclass
class StreamScan:
    """What the packets of the video stream say, read without decoding.

    Attributes:
        start: Time of the first packet (seconds, the stream's clock); clip times count from it.
        end: End of the last packet, seconds from `start` (the video's length); 0 when unknown.
        frames: Packets with a timestamp (one per frame for every common codec).
        keyframes: Keyframe times, seconds from `start`, sorted.
        keyframe_pts: The same keyframes as stream timestamps (what `container.seek` takes).
        cues: Cues of the embedded subtitle stream that was demuxed along (seconds from `start`).
        subtitle_codec: That stream's codec name, or None.
        error: Why the scan stopped before the end of the file, or None.
    """

    start: float = 0.0
    end: float = 0.0
    frames: int = 0
    keyframes: list[float] = field(default_factory=list)
    keyframe_pts: list[int] = field(default_factory=list)
    cues: list[Cue] = field(default_factory=list)
    subtitle_codec: str | None = None
    error: str | None = None

    @property
    def fps(self) -> float:
        """Mean frames per second (0 when unknown)."""
        return self.frames / self.end if self.end > 0 else 0.0


def scan_stream(av: Any, path: Path, subtitles: bool = True, language: str | None = None) -> StreamScan:
    """One pass over the packets of the first video stream (and a text subtitle stream) of `path`."""
    out = StreamScan()
    with av.open(str(path), metadata_errors="ignore") as container:
        video = container.streams.video[0]
        sub = subtitle_stream(container, language) if subtitles else None
        tb = video.time_base
        first = last = None
        keys: list[int] = []
        sub_packets: list[Any] = []
        try:
            for packet in container.demux([video, sub] if sub is not None else [video]):
                if packet.stream is sub:
                    if packet.pts is not None:
                        sub_packets.append(packet)  # a few bytes each; decoded once the offset is known
                    continue
                if packet.pts is None:
                    continue
                out.frames += 1
                first = packet.pts if first is None else min(first, packet.pts)
                last = max(last if last is not None else packet.pts, packet.pts + (packet.duration or 0))
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.error.FFmpegError as e:
            out.error = str(e)
        if first is None or last is None or tb is None:
            return out
        out.start = float(first * tb)
        out.end = float((last - first) * tb)
        keys = sorted(set(keys))
        out.keyframe_pts = keys
        out.keyframes = [float((k - first) * tb) for k in keys]
        if sub is not None:
            out.subtitle_codec = sub.codec_context.name
            out.cues = embedded_cues(sub_packets, sub, offset=out.start)
    return out


@dataclass(frozen=True)
class Slot:
    """A span a frame is wanted from: any frame in `[s0, s1)` will do, the one at `centre` is best."""

    s0: float
    s1: float
    centre: float


@dataclass(frozen=True)
class Step:
    """One frame to get: seek first (to the keyframe at pts `seek`) when set, then decode on.

    With `exact`, the frame at `want` (a keyframe) is taken; else the frame on screen at `want` (the
    last one starting at or before it) if it starts inside `[s0, s1)`, else the first one after it.
    """

    want: float
    s0: float
    s1: float
    seek: int | None = None
    exact: bool = False
    cost: float = 0.0


def plan_steps(
    slots: Sequence[Slot], scan: StreamScan, seek_cost: float = SEEK_COST_FRAMES, seeks: bool = True
) -> list[Step]:
    """The cheapest way (in decoded frames) to get one frame for each slot, in time order.

    Args:
        slots: Spans sorted by `s0`; a slot that the previous step's frame already falls in, or
            has passed, gets no step.
        scan: Keyframes and frame rate of the stream.
        seek_cost: Frames one seek is worth.
        seeks: False forbids seeks: the plan decodes straight through (every frame up to the last slot).
    """
    fps = scan.fps or 25.0
    keys = scan.keyframes
    pos = -1.0 / fps  # time of the frame the decoder last gave; the next one is the first
    steps: list[Step] = []
    for slot in slots:
        if pos >= slot.s0 - _EPS:
            continue
        best = Step(slot.centre, slot.s0, slot.s1, cost=(slot.centre - pos) * fps + 1)
        if seeks:
            lo = bisect.bisect_right(keys, pos + _EPS)
            hi = bisect.bisect_left(keys, slot.s1 - _EPS)
            inside = range(bisect.bisect_left(keys, slot.s0 - _EPS, lo), hi)
            if inside:  # a keyframe in the slot: one decoded frame after the seek
                i = min(inside, key=lambda j: abs(keys[j] - slot.centre))
                if seek_cost + 1 < best.cost:
                    best = Step(keys[i], slot.s0, slot.s1, scan.keyframe_pts[i], True, seek_cost + 1)
            else:
                i = bisect.bisect_right(keys, slot.centre + _EPS, lo, hi) - 1
                if i >= lo:  # the last keyframe before the centre, past where the decoder stands
                    cost = seek_cost + (slot.centre - keys[i]) * fps + 2
                    if cost < best.cost:
                        best = Step(slot.centre, slot.s0, slot.s1, scan.keyframe_pts[i], False, cost)
        steps.append(best)
        pos = best.want
    return steps


def frame_time(frame: Any, start: float, count: int, fps: float) -> float:
    """Seconds from the stream's start; frames without a timestamp count on from the frame rate."""
    return max(0.0, frame.time - start) if frame.time is not None else count / (fps or 25.0)


def sampled_frames(
    av: Any, container: Any, stream: Any, steps: Sequence[Step], start: float
) -> Iterator[tuple[float, Any]]:
    """(time, frame) for the steps of a plan, times strictly increasing (a step whose frame was
    already given, or is missing, gives nothing).

    Raises:
        IngestError: the decoder fails (corrupt data).
    """
    decoded: Iterator[Any] | None = None
    ahead: tuple[float, Any] | None = None  # decoded past the last step's `want`, not given yet
    given = t = -1.0

    def pull() -> tuple[float, Any] | None:
        nonlocal decoded, t
        assert decoded is not None
        frame = next(decoded, None)
        if frame is None:
            return None
        t = frame_time(frame, start, 0, 0.0)
        return t, frame

    try:
        for step in steps:
            if step.seek is not None and (ahead is None or ahead[0] < step.want - _EPS):
                seek(container, stream, pts=step.seek)
                decoded, ahead = None, None
            if decoded is None:
                decoded = container.decode(stream)
            on_screen: tuple[float, Any] | None = None
            while True:
                item, ahead = (ahead if ahead is not None else pull()), None
                if item is None:
                    break
                if step.exact:
                    if item[0] >= step.want - _EPS:
                        on_screen = item  # the keyframe sought to
                        break
                elif item[0] <= step.want + _EPS:
                    on_screen = item
                else:
                    ahead = item
                    break
            pick = on_screen
            if not step.exact and (pick is None or pick[0] < step.s0 - _EPS):
                if ahead is not None and ahead[0] < step.s1:  # nothing starts in the slot before `want`
                    pick, ahead = ahead, None
            if pick is None and ahead is None:
                return  # the stream ended
            if pick is not None and pick[0] > given:
                given = pick[0]
                yield pick
    except av.error.FFmpegError as e:
        raise IngestError(f"corrupt video: decoding failed after {max(t, 0):.2f} s: {e}") from e


def all_frames(
    av: Any, container: Any, stream: Any, start: float | None, fps: float
) -> Iterator[tuple[float, Any]]:
    """(time, frame) for every frame, in order; `start` None takes the first frame's time.

    Raises:
        IngestError: the decoder fails (corrupt data), or no frame decodes at all.
    """
    t, count = 0.0, 0
    try:
        for frame in container.decode(stream):
            if start is None:
                start = frame.time if frame.time is not None else 0.0
            t = frame_time(frame, start, count, fps)
            count += 1
            yield t, frame
    except av.error.FFmpegError as e:
        where = f"after {t:.2f} s" if count else "at the first frame"
        raise IngestError(f"corrupt video: decoding failed {where}: {e}") from e
    if not count:
        raise IngestError("no video frame could be decoded")


def frames_at(path: Path, times: list[float], px: int = FRAME_PX) -> list[Image.Image]:
    """The frames at `times` (seconds from the first frame; the first frame at or after each), found
    by seeking: for re-reading a clip's frames (`frame_times` in its payload) after indexing.

    Raises:
        IngestError: not a video, or no frame could be decoded.
    """
    av = load_av()
    container, stream = open_video(av, path)
    with container:
        scan = scan_stream(av, path, subtitles=False)
        half = 0.5 / (scan.fps or 25.0)
        slots = [Slot(t - half, t + half, t) for t in sorted(times)]
        steps = plan_steps(slots, scan)
        got = [(t, frame_image(f, px)) for t, f in sampled_frames(av, container, stream, steps, scan.start)]
    if not got:
        raise IngestError("no video frame could be decoded")
    return [next((img for t, img in got if t >= want - half), got[-1][1]) for want in times]
