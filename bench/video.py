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
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asr_speed import speech  # noqa: E402
from common import write_json, write_result  # noqa: E402
from video_media import decode_fps, ingest_only, loop_video, reencode_long_gop, write_srt  # noqa: E402

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "imageio_cockatoo.mp4"


# --- measurements ----------------------------------------------------------------------------------


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
