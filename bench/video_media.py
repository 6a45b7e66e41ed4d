"""The media side of `bench/video.py`: the long test videos, and how fast they decode and ingest.

The test videos are built from one real clip without re-encoding it: `loop_video` remuxes a clip's
packets again and again with shifted timestamps, so the long file decodes exactly like the real
encoding, repeated; `reencode_long_gop` re-encodes one loop with a keyframe only every 250 frames
(the worst case for seeking); `write_srt` writes a sidecar with a cue every 3 s, so the text encoder
gets realistic work. `decode_fps` times PyAV's decoding alone; `ingest_only` times
`iter_video_chunks` (decode, sample, convert; no encoders) in a fresh process, with its peak
resident memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

WORDS = (
    "the cockatoo lifts its crest and turns toward the keeper who holds a slice of apple while "
    "visitors watch from behind the glass as the bird climbs the branch and calls twice"
).split()


def loop_video(src: Path, dst: Path, seconds: float) -> float:
    """Remux the video packets of `src` over and over into `dst` until it lasts `seconds`; its length."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        packets = [p for p in inp.demux(stream) if p.dts is not None]
        first = min(p.pts for p in packets)
        span = max(p.pts + p.duration for p in packets) - first
        loops = max(1, int(-(-seconds // float(span * stream.time_base))))
        for k in range(loops):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts, q.duration = p.pts + k * span, p.dts + k * span, p.duration
                q.is_keyframe, q.time_base, q.stream = p.is_keyframe, p.time_base, ostream
                out.mux(q)
    return float(loops * span * stream.time_base)


def reencode_long_gop(src: Path, dst: Path, keyint: int = 250) -> Path:
    """One loop of `src` re-encoded (x264 `veryfast`) with a keyframe every `keyint` frames only."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream("libx264", rate=stream.average_rate)
        ostream.width, ostream.height, ostream.pix_fmt = stream.width, stream.height, "yuv420p"
        ostream.codec_context.gop_size = keyint
        ostream.codec_context.options = {"preset": "veryfast", "sc_threshold": "0", "crf": "23"}
        for i, frame in enumerate(inp.decode(stream)):
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1) / stream.average_rate
            for p in ostream.encode(frame):
                out.mux(p)
        for p in ostream.encode():
            out.mux(p)
    return dst


def write_srt(path: Path, seconds: float, every: float = 3.0) -> int:
    """A cue every `every` seconds (2.5 s long) of 8 words cycling through WORDS; the cue count."""
    from media import make_srt

    n = int(seconds // every)
    cues = [
        (i * every, i * every + 2.5, " ".join(WORDS[(i * 8 + j) % len(WORDS)] for j in range(8)))
        for i in range(n)
    ]
    make_srt(path, cues)
    return n


# --- decoding and ingest alone ----------------------------------------------------------------------


def decode_fps(path: Path, thread_type: str, frames: int) -> float:
    """Frames per second decoding the first `frames` frames of `path` (every frame, nothing kept)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = thread_type
        t0 = time.perf_counter()
        n = 0
        for _ in container.decode(stream):
            n += 1
            if n >= frames:
                break
        return n / (time.perf_counter() - t0)


_CHILD = """
import json, sys, threading, time
from pathlib import Path
import av
import mmrag.ingest.video as video
from mmrag.config import IngestConfig

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

path, sampling, segment = sys.argv[1:4]
cfg = IngestConfig()
cfg.video_sampling, cfg.segment = sampling, segment
peak, done = [rss_mb()], threading.Event()
base = peak[0]

def watch():
    while not done.wait(0.02):
        peak[0] = max(peak[0], rss_mb())

threading.Thread(target=watch, daemon=True).start()
t0 = time.perf_counter()
clips = sum(1 for _ in video.iter_video_chunks(Path(path), cfg))
seconds = time.perf_counter() - t0
done.set()
peak[0] = max(peak[0], rss_mb())
print(json.dumps({"clips": clips, "seconds": seconds, "rss_base_mb": base, "rss_peak_mb": peak[0]}))
"""


def ingest_only(path: Path, sampling: str, segment: str = "fixed") -> dict[str, Any]:
    """Time `iter_video_chunks` alone (decode, sample, convert; no encoders) in a fresh process, with
    its peak resident memory above the imports (sampled every 20 ms), and the frames it decodes (the
    plan's count)."""
    import av

    from mmrag.config import IngestConfig
    from mmrag.ingest.frames import SEEK_COST_FRAMES, Slot, plan_steps, scan_stream
    from mmrag.ingest.shots import fixed_windows

    argv = [sys.executable, "-c", _CHILD, str(path), sampling, segment]
    out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    scan = scan_stream(av, path, subtitles=False)
    row: dict[str, Any] = {
        "sampling": sampling,
        "segment": segment,
        "video_minutes": round(scan.end / 60, 1),
        "clips": out["clips"],
        "seconds": round(out["seconds"], 2),
        "frames_in_video": scan.frames,
        "frames_decoded": scan.frames,
        "rss_extra_mb": round(out["rss_peak_mb"] - out["rss_base_mb"], 1),
    }
    if segment == "fixed" and sampling != "decode":
        cfg = IngestConfig()
        slots = []
        for t0, t1 in fixed_windows(scan.end, cfg.clip_seconds, 0.0, min(1.0, cfg.clip_seconds / 4)):
            w = (t1 - t0) / cfg.frames_per_clip
            slots += [
                Slot(t0 + k * w, t0 + (k + 1) * w, t0 + (k + 0.5) * w) for k in range(cfg.frames_per_clip)
            ]
        steps = plan_steps(slots, scan)
        row["seeks"] = sum(s.seek is not None for s in steps)
        row["frames_decoded"] = round(sum(s.cost for s in steps) - row["seeks"] * SEEK_COST_FRAMES)
    row["frames_decoded_per_second"] = round(row["frames_decoded"] / out["seconds"], 1)
    row["minutes_per_video_hour"] = round(out["seconds"] / scan.end * 60, 2)
    return row
