"""Long-video indexing: decode throughput, seek sampling against decoding every frame, memory, and
index minutes per video hour end to end with the offline profile (with and without clip captions).

The long test videos are built from a real clip (`imageio_cockatoo.mp4`: 1280x720 H.264, 20 fps,
14 s, keyframes at 0, 3.8 and 7.25 s) without re-encoding it: its packets are written again and
again with shifted timestamps (a remux), so the file decodes exactly like the real encoding, repeated.
A second version re-encodes one loop with a keyframe only every 250 frames (x264's default
interval, 12.5 s here, scene-cut keyframes off) and loops that: the worst case for seeking. A
sidecar SRT with a cue every 3 s gives the text encoder realistic work.

Per-hour numbers are the measured seconds times 3600 / the video's length: every stage works clip
by clip in memory that does not grow with length (measured: peak RSS of a quarter-length and a
full-length run), so time is linear in length. One run each, on a machine whose 2 cores are shared:
read ratios, not third digits.

Speech (`bench/asr_speed.py`): the real-time factor of the offline ASR (Whisper tiny.en, int8)
on an espeak-ng narration, and the same looped video with that narration as its soundtrack and no
subtitles indexed end to end with `asr=auto`.

    python bench/video.py                        # 10 minutes, writes bench/results/video.json + .png
    python bench/video.py --minutes 3 --no-captions
    python bench/video.py --only-asr             # only the speech numbers, into the existing JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asr_speed import speech  # noqa: E402
from common import write_json, write_result  # noqa: E402

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "imageio_cockatoo.mp4"
WORDS = (
    "the cockatoo lifts its crest and turns toward the keeper who holds a slice of apple while "
    "visitors watch from behind the glass as the bird climbs the branch and calls twice"
).split()


# --- building the test videos --------------------------------------------------------------------


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


# --- measurements ----------------------------------------------------------------------------------


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


def end_to_end(path: Path, index: Path, sampling: str, seconds_of_video: float) -> dict[str, Any]:
    """Index `path` (and its SRT) with the offline profile; seconds and minutes per video hour."""
    from mmrag import Pipeline

    overrides = {"ingest.video_sampling": sampling} if _has_field("video_sampling") else {}
    with Pipeline.from_config(profile="offline", index=index, **overrides) as p:
        if not _has_field("video_sampling"):
            p.config.ingest.video_sampling = sampling  # type: ignore[attr-defined]
        p.embedders.image, p.embedders.text  # load the encoders outside the timing  # noqa: B018
        t0 = time.perf_counter()
        report = p.index([path])
        seconds = time.perf_counter() - t0
    return {
        "sampling": sampling,
        "points": report.points_written,
        "errors": [e.reason for e in report.errors],
        "seconds": round(seconds, 1),
        "index_minutes_per_video_hour": round(seconds / seconds_of_video * 60, 2),
    }


def _has_field(name: str) -> bool:
    from dataclasses import fields

    from mmrag.config import IngestConfig

    return name in {f.name for f in fields(IngestConfig)}


def captions(index: Path, seconds_of_video: float, max_new_tokens: int) -> dict[str, Any]:
    """Caption every clip of the index with the packaged bridge (EfficientNet-Lite0 + projector +
    SmolLM2-135M; a weak captioner trained on easy-VQA shapes, here for its cost, not its words)."""
    from mmrag import Pipeline
    from mmrag.generate.bridge import BridgeModel
    from mmrag.index.captions import caption_clips, vlm_caption_fn

    bridge_dir = Path("~/.cache/mmrag/bridges/efficientnet-smollm2").expanduser()
    if not (bridge_dir / "bridge.json").exists():
        return {"skipped": f"no trained bridge at {bridge_dir} (train one with mmrag train-bridge)"}
    bridge = BridgeModel.load(bridge_dir, device="cpu")
    fn = vlm_caption_fn(bridge, max_new_tokens=max_new_tokens)
    with Pipeline.load(index) as p:
        p.embedders.text  # noqa: B018
        t0 = time.perf_counter()
        n = caption_clips(p.store, p.embedders, fn, batch_size=8)
        seconds = time.perf_counter() - t0
        sample = next(
            (h["payload"].get("caption") for h in p.store.scroll() if h["payload"].get("caption")), None
        )
    return {
        "clips": n,
        "seconds": round(seconds, 1),
        "seconds_per_clip": round(seconds / max(1, n), 2),
        "caption_minutes_per_video_hour": round(seconds / seconds_of_video * 60, 2),
        "max_new_tokens": max_new_tokens,
        "sample_caption": sample,
    }


def ocr_cost(path: Path, clips: int = 12) -> dict[str, Any]:
    """Seconds of RapidOCR on one 384-px frame per clip, for `clips` clips."""
    from mmrag.config import IngestConfig
    from mmrag.encoders.ocr import Ocr
    from mmrag.ingest.video import iter_video_chunks

    frames = []
    for c in iter_video_chunks(path, IngestConfig()):
        frames.append(c.images[len(c.images) // 2])
        if len(frames) >= clips:
            break
    ocr = Ocr()
    ocr(frames[0])  # load the models outside the timing
    t0 = time.perf_counter()
    for f in frames:
        ocr(f)
    per = (time.perf_counter() - t0) / len(frames)
    return {
        "seconds_per_clip": round(per, 3),
        "ocr_minutes_per_video_hour_at_10s_clips": round(per * 360 / 60, 2),
    }


# --- report ----------------------------------------------------------------------------------------


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5))
    rows = result["ingest_only"]
    labels = [
        f"{r['video'].split('-')[0]}\n{r['segment']}/{r['sampling']}\n{r['video_minutes']:g} min"
        for r in rows
    ]
    a.bar(range(len(rows)), [r["minutes_per_video_hour"] for r in rows], color="tab:blue")
    a.set_xticks(range(len(rows)), labels, fontsize=7)
    a.set_ylabel("minutes per video hour")
    a.set_title("decode + sample + convert (no encoders)")
    e2e = result["end_to_end"]
    names = [f"index, {r['sampling']}\n{r['video_minutes']:g} min" for r in e2e]
    values = [r["index_minutes_per_video_hour"] for r in e2e]
    cap = result.get("captions") or {}
    if "caption_minutes_per_video_hour" in cap:
        names.append("+ captions")
        values.append(cap["caption_minutes_per_video_hour"])
    ocr = result.get("ocr") or {}
    if "ocr_minutes_per_video_hour_at_10s_clips" in ocr:
        names.append("+ OCR (1 frame/clip)")
        values.append(ocr["ocr_minutes_per_video_hour_at_10s_clips"])
    b.bar(range(len(values)), values, color="tab:green")
    b.set_xticks(range(len(values)), names, fontsize=8)
    b.set_ylabel("minutes per video hour")
    b.set_title("offline profile, end to end (CPU, 2 shared cores)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the long test video")
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--no-captions", action="store_true")
    ap.add_argument("--caption-tokens", type=int, default=24)
    ap.add_argument("--decode-frames", type=int, default=3000, help="frames decoded per threading variant")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "video.json")
    ap.add_argument("--keep", action="store_true", help="keep the test videos and indexes (printed folder)")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from an existing --out JSON")
    ap.add_argument("--only-asr", action="store_true", help="run the speech part alone, update --out's 'asr'")
    args = ap.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text(encoding="utf-8")), args.out.with_suffix(".png"))
        return
    if not args.source.exists():
        sys.exit(f"source video not found: {args.source}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # media.make_srt
    work = Path(tempfile.mkdtemp(prefix="mmrag-bench-video-"))
    if args.only_asr:
        length = loop_video(args.source, work / "loop.mp4", args.minutes * 60)
        result = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
        result["asr"] = speech(work / "loop.mp4", length, work)
        write_result(result, args.out, plot) if "ingest_only" in result else write_json(result, args.out)
        print(json.dumps(result["asr"], indent=2))
        shutil.rmtree(work, ignore_errors=True)
        return
    t_build = time.perf_counter()
    long = work / "loop.mp4"
    length = loop_video(args.source, long, args.minutes * 60)
    quarter = work / "quarter.mp4"
    quarter_length = loop_video(args.source, quarter, args.minutes * 15)
    write_srt(quarter.with_suffix(".srt"), quarter_length)
    gop = work / "loop_gop250.mp4"
    loop_video(reencode_long_gop(args.source, work / "gop250_once.mp4"), gop, args.minutes * 60)
    cues = write_srt(long.with_suffix(".srt"), length)
    print(
        f"built test videos in {time.perf_counter() - t_build:.1f} s ({length:.0f} s each)", file=sys.stderr
    )

    result: dict[str, Any] = {
        "source": args.source.name,
        "video_seconds": length,
        "subtitle_cues": cues,
        "how": "remuxed loops of the real clip; per-hour = seconds x 3600 / video length (linear: "
        "memory flat, work per clip)",
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "av": version("av")},
        "load_average_before": os.getloadavg(),
    }
    result["decode_fps"] = {
        name: {t: round(decode_fps(path, t, args.decode_frames), 1) for t in ("NONE", "SLICE", "AUTO")}
        for name, path in (("cockatoo-loop", long), ("gop250-loop", gop))
    }
    print(json.dumps(result["decode_fps"]), file=sys.stderr)
    rows = []
    runs = [
        ("cockatoo-loop", long, "decode", "fixed"),
        ("cockatoo-loop", long, "auto", "fixed"),
        ("cockatoo-loop", quarter, "auto", "fixed"),
        ("gop250-loop", gop, "decode", "fixed"),
        ("gop250-loop", gop, "auto", "fixed"),
        ("cockatoo-loop", long, "decode", "shots"),
        ("cockatoo-loop", quarter, "decode", "shots"),
    ]
    for name, path, sampling, segment in runs:
        rows.append({"video": name, **ingest_only(path, sampling, segment)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    result["ingest_only"] = rows
    full = {
        (r["video"], r["segment"], r["sampling"]): r for r in rows if r["video_minutes"] >= args.minutes * 0.9
    }
    result["seek_speedup_vs_decode_all"] = {
        name: round(full[(name, "fixed", "decode")]["seconds"] / full[(name, "fixed", "auto")]["seconds"], 2)
        for name in ("cockatoo-loop", "gop250-loop")
    }
    result["end_to_end"] = [
        {"video_minutes": round(secs / 60, 1), **end_to_end(path, work / f"idx-{tag}", sampling, secs)}
        for tag, path, sampling, secs in (
            ("quarter", quarter, "auto", quarter_length),
            ("auto", long, "auto", length),
            ("decode", long, "decode", length),
        )
    ]
    print(json.dumps(result["end_to_end"]), file=sys.stderr)
    result["ocr"] = ocr_cost(long)
    result["asr"] = speech(long, length, work)
    if not args.no_captions:
        result["captions"] = captions(work / "idx-quarter", quarter_length, args.caption_tokens)
        print(json.dumps(result["captions"]), file=sys.stderr)
    result["load_average_after"] = os.getloadavg()
    write_result(result, args.out, plot)
    print(json.dumps(result, indent=2))
    if args.keep:
        print(f"test videos and indexes kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
