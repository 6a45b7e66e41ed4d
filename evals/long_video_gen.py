"""The generated long-video benchmark, rendered: the planned segments (`mmrag.evals.long_video_plan`)
drawn into an H.264 video and an SRT file, cached under `runs/long-video/data/<key>/`; with the
spoken track (`mmrag.evals.long_video_speech`), an AAC soundtrack and `long_video.spoken.srt`.

Shapes are drawn like easy-VQA's (one filled shape in one of its eight colours on a pale
background), text cards as white titles on dark blue, and real excerpts are resampled from the videos
of `../shared/data/video` (when present), centre-cropped and looped.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.evals.long_video_plan import (
    COLOURS,
    GEN_VERSION,
    SHAPE_NAMES,
    SHAPES,
    Benchmark,
    GenConfig,
    Question,
    Segment,
    pick_questions,
    plan,
)
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


def _pale(rng: random.Random) -> tuple[int, int, int]:
    r, g, b = (rng.randint(225, 255) for _ in range(3))
    return r, g, b


def draw_shape(
    size: tuple[int, int], shape: str, colour: str, rng: random.Random, phase: float = 0.0
) -> Image.Image:
    """An easy-VQA-like frame: one filled shape on a pale background; `phase` (0-1) drifts it sideways."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    w, h = size
    state = rng.getstate()  # same background, size and path for every frame of a segment
    bg, s = _pale(rng), rng.randint(h // 3, h // 2)
    x0, y0 = rng.randint(0, w - s - 40), rng.randint(0, h - s)
    rng.setstate(state)
    x0 += int(40 * phase)
    img = PILImage.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    fill = COLOURS[colour]
    if shape == "circle":
        d.ellipse((x0, y0, x0 + s, y0 + s), fill=fill)
    elif shape == "rectangle":
        d.rectangle((x0, y0 + s // 6, x0 + s, y0 + s - s // 6), fill=fill)
    elif shape == "triangle":
        d.polygon([(x0 + s // 2, y0), (x0, y0 + s), (x0 + s, y0 + s)], fill=fill)
    else:
        raise MMRAGError(f"unknown shape {shape!r}")
    return img


def draw_card(size: tuple[int, int], title: str, chapter: int) -> Image.Image:
    """A text card: `Chapter N` and a title, white on dark blue."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    img = PILImage.new("RGB", size, (20, 30, 70))
    d = ImageDraw.Draw(img)
    big, small = ImageFont.load_default(size=28), ImageFont.load_default(size=18)
    d.text((size[0] // 2, size[1] // 2 - 24), f"Chapter {chapter}", fill="white", font=small, anchor="mm")
    d.text((size[0] // 2, size[1] // 2 + 12), title.title(), fill="white", font=big, anchor="mm")
    return img


def real_frames(path: Path, fps: int, size: tuple[int, int], max_seconds: float = 10.0) -> list[np.ndarray]:
    """A real video resampled to `fps` (the frame shown at each tick) and centre-cropped to `size`."""
    import av
    from PIL import ImageOps

    out: list[np.ndarray] = []
    import numpy as np

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            t = frame.time if frame.time is not None else i / 25.0
            if t >= max_seconds:
                break
            while len(out) <= t * fps:
                img = ImageOps.fit(frame.to_image().convert("RGB"), size)
                out.append(np.asarray(img))
    if not out:
        raise MMRAGError(f"{path}: no frame could be decoded")
    return out


def render(
    bench_dir: Path,
    cfg: GenConfig,
    segments: list[Segment],
    real_dir: Path | None,
    audio: np.ndarray | None = None,
) -> Path:
    """Encode the video (H.264, one keyframe per segment; `audio`, 16 kHz mono, as AAC) and write it
    to `bench_dir/long_video.mp4`."""
    import av
    import numpy as np

    from mmrag.evals.long_video_speech import add_audio_stream, encode_audio

    size = (cfg.width, cfg.height)
    sources: dict[str, list[np.ndarray]] = {}
    out = bench_dir / "long_video.mp4"
    tmp = out.with_suffix(".tmp.mp4")
    per_segment = round(cfg.segment_seconds * cfg.fps)
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=cfg.fps, options={"preset": "veryfast", "crf": "26"})
        stream.width, stream.height, stream.pix_fmt = cfg.width, cfg.height, "yuv420p"
        stream.codec_context.gop_size = per_segment
        sound = add_audio_stream(container) if audio is not None else None
        pts = 0
        for seg in segments:
            rng = random.Random(f"{cfg.seed}:{seg.index}")
            offset = rng.randrange(1000)
            for j in range(per_segment):
                if seg.visual == "shape":
                    assert seg.shape and seg.colour
                    arr = np.asarray(draw_shape(size, seg.shape, seg.colour, rng, j / per_segment))
                elif seg.visual == "card":
                    arr = np.asarray(draw_card(size, seg.topic, seg.index + 1))
                else:
                    name = seg.visual.split(":", 1)[1]
                    if name not in sources:
                        assert real_dir is not None
                        sources[name] = real_frames(real_dir / name, cfg.fps, size)
                    frames = sources[name]
                    arr = frames[(offset + j) % len(frames)]
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
                frame.pts = pts
                pts += 1
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None and audio is not None:
            encode_audio(container, sound, audio)
    tmp.replace(out)
    return out


def srt_time(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def write_srt(
    path: Path, segments: list[Segment], cues: list[tuple[float, float, str]] | None = None
) -> Path:
    """The segments' subtitles (or the `cues` given) as an SRT file."""
    cues = [c for s in segments for c in s.cues] if cues is None else cues
    blocks = [f"{i}\n{srt_time(a)} --> {srt_time(b)}\n{text}\n" for i, (a, b, text) in enumerate(cues, 1)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def _real_videos(real_dir: Path | None) -> list[str]:
    if real_dir is None or not real_dir.is_dir():
        return []
    return sorted(p.name for p in real_dir.iterdir() if p.suffix.lower() in (".mp4", ".webm", ".gif", ".mkv"))


def generate(
    root: str | Path = "runs/long-video/data", cfg: GenConfig | None = None, real_dir: Path | None = None
) -> Benchmark:
    """The benchmark for `cfg`, generated once and cached under `root/<key>/`.

    Args:
        root: Cache folder.
        cfg: What to generate.
        real_dir: Folder of real videos mixed in (default: none).
    """
    cfg = cfg or GenConfig()
    reals = _real_videos(real_dir)
    segments, questions = plan(cfg, reals)
    bench_dir = Path(root) / cfg.key(reals)
    video, subs = bench_dir / "long_video.mp4", bench_dir / "long_video.srt"
    spoken_subs = bench_dir / "long_video.spoken.srt" if any(s.speech for s in segments) else None
    meta = bench_dir / "benchmark.json"
    if not (video.is_file() and meta.is_file()):
        bench_dir.mkdir(parents=True, exist_ok=True)
        audio: Any = None
        spoken: list[Any] = []
        if spoken_subs is not None:
            from mmrag.evals.long_video_speech import soundtrack, spoken_srt_cues

            audio, spoken = soundtrack(segments, segments[-1].t_end)
            write_srt(spoken_subs, segments, spoken_srt_cues(segments, spoken))
        render(bench_dir, cfg, segments, real_dir, audio)
        write_srt(subs, segments)
        data: dict[str, Any] = {
            "config": asdict(cfg),
            "version": GEN_VERSION,
            "real_videos": reals,
            "segments": [asdict(s) for s in segments],
            "questions": [asdict(q) for q in questions],
            "spoken": [list(c) for c in spoken],
        }
        meta.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return Benchmark(video, subs, questions, segments, cfg, spoken_subs)


__all__ = [
    "COLOURS",
    "SHAPES",
    "SHAPE_NAMES",
    "Benchmark",
    "GenConfig",
    "Question",
    "Segment",
    "draw_card",
    "draw_shape",
    "generate",
    "pick_questions",
    "plan",
    "real_frames",
    "render",
    "write_srt",
]
