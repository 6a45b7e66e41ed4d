"""Make test media at test time (no binaries in the repository).

Videos are PyAV-encoded clips of solid colours, one colour per `seconds_per_colour` span, so a test
can tell which part of the video a sampled frame came from. PDFs are written with fpdf2 (a dev
dependency), whose text layer PDFium reads back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

RED, GREEN, BLUE, YELLOW = (230, 20, 20), (20, 200, 20), (20, 20, 230), (230, 230, 20)
COLOURS = (RED, GREEN, BLUE, YELLOW)


def make_video(
    path: Path,
    seconds: float,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    seconds_per_colour: float = 1.0,
    colours: Sequence[tuple[int, int, int]] = COLOURS,
    codec: str = "libx264",
    faststart: bool = False,
) -> Path:
    """Encode `seconds` of solid-colour frames; frame i shows colours[int(i / fps / seconds_per_colour) % n].

    `faststart` puts the MP4 index (moov) before the media data, as streaming sites do.
    """
    import av

    width, height = size
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(round(seconds * fps)):
            colour = colours[int(i / fps / seconds_per_colour) % len(colours)]
            arr = np.empty((height, width, 3), dtype=np.uint8)
            arr[:] = colour
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def srt_time(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def make_srt(path: Path, cues: Sequence[tuple[float, float, str]]) -> Path:
    """Write a SubRip file from (start, end, text) cues."""
    blocks = [f"{i}\n{srt_time(a)} --> {srt_time(b)}\n{text}\n" for i, (a, b, text) in enumerate(cues, 1)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def make_vtt(path: Path, cues: Sequence[tuple[float, float, str]]) -> Path:
    """Write a WebVTT file from (start, end, text) cues, with a header note and cue settings."""
    lines = ["WEBVTT", "", "NOTE made by tests/media.py", ""]
    for a, b, text in cues:
        lines += [
            f"{srt_time(a).replace(',', '.')} --> {srt_time(b).replace(',', '.')} align:start",
            text,
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def two_tone(size: tuple[int, int] = (60, 40)) -> Image.Image:
    """Left half red, right half blue: its orientation can be read back from the pixels."""
    arr = np.empty((size[1], size[0], 3), dtype=np.uint8)
    arr[:, : size[0] // 2] = RED
    arr[:, size[0] // 2 :] = BLUE
    return Image.fromarray(arr)


def make_exif_jpeg(path: Path, orientation: int, image: Image.Image | None = None) -> Path:
    """Save a JPEG whose EXIF Orientation tag is `orientation` (6: display turned 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    (image or two_tone()).save(path, format="JPEG", quality=95, exif=exif)
    return path


def make_animated_gif(path: Path, colours: Sequence[tuple[int, int, int]] = COLOURS, size: int = 32) -> Path:
    """An animated GIF with one solid frame per colour, 100 ms each."""
    frames = [Image.new("RGB", (size, size), c) for c in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def make_pdf(path: Path, pages: Sequence[str], image_pages: Sequence[Image.Image] = ()) -> Path:
    """A Letter-size PDF: one page per text (with a text layer), then one page per image (no text)."""
    fpdf = pytest.importorskip(
        "fpdf", reason="PDF tests write their PDFs with fpdf2 (pip install 'mmrag[dev]')"
    )
    pdf = fpdf.FPDF(unit="pt", format="letter")
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 16, text)
    for img in image_pages:
        pdf.add_page()
        pdf.image(img, x=36, y=36, w=540)
    pdf.output(str(path))
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to `keep` of its size, in place."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def touch(path: Path, data: bytes = b"x") -> Path:
    """Write `data` to `path` (creating folders) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- long-video ingest: subtitle streams, shots, variable frame rate --------------------------------

_ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\n\n"
    "[V4+ Styles]\nFormat: Name, Fontname, Fontsize\nStyle: Default,Arial,16\n\n"
    "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


def _solid(colour: Sequence[int], size: tuple[int, int]) -> np.ndarray:
    arr = np.empty((size[1], size[0], 3), dtype=np.uint8)
    arr[:] = colour
    return arr


def make_subtitled_video(
    path: Path,
    seconds: float,
    cues: Sequence[tuple[float, float, str]],
    codec: str = "subrip",
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    seconds_per_colour: float = 1.0,
    language: str | None = None,
    audio_seconds: float | None = None,
) -> Path:
    """Solid-colour frames (as `make_video`) with a text subtitle stream muxed in by PyAV.

    `codec`: `subrip`, `ass` or `webvtt` (MKV/WebM) or `mov_text` (MP4/MOV). Cue text is an ASS
    dialogue text, so `{\\i1}` overrides and `\\N` breaks can be planted. `audio_seconds` adds a
    silent AAC track of that length.
    """
    from fractions import Fraction

    import av
    from av.subtitles.subtitle import SubtitleSet

    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        subs = container.add_stream(codec)
        subs.codec_context.subtitle_header = _ASS_HEADER.encode()
        subs.time_base = Fraction(1, 1000)
        if language:
            subs.metadata["language"] = language
        audio = container.add_stream("aac", rate=16000) if audio_seconds else None
        for a, b, text in cues:
            item = SubtitleSet.create(f"0,0,Default,,0,0,0,,{text}".encode(), 0, round((b - a) * 1000), 0)
            packet = subs.codec_context.encode_subtitle(item)
            packet.stream = subs
            packet.pts = packet.dts = round(a / subs.time_base)
            packet.duration = round((b - a) / subs.time_base)
            container.mux(packet)
        if audio is not None and audio_seconds:
            silence = av.AudioFrame.from_ndarray(
                np.zeros((1, round(16000 * audio_seconds)), dtype=np.float32), format="fltp", layout="mono"
            )
            silence.sample_rate, silence.pts = 16000, 0
            for packet in [*audio.encode(silence), *audio.encode()]:
                container.mux(packet)
        for i in range(round(seconds * fps)):
            colour = COLOURS[int(i / fps / seconds_per_colour) % len(COLOURS)]
            frame = av.VideoFrame.from_ndarray(_solid(colour, size), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return path


SHOT_COLOURS = ((200, 40, 40), (40, 160, 60), (40, 60, 200), (220, 200, 40), (150, 40, 170), (30, 170, 170))


def make_shots_video(
    path: Path, shots: Sequence[float], fps: int = 10, size: tuple[int, int] = (64, 48), seed: int = 0
) -> Path:
    """Shots lasting `shots[i]` seconds; shot i is SHOT_COLOURS[i % 6] with noise and a dark bar moving
    across, so frames inside a shot differ a little and frames across a cut a lot. The cuts are at
    the running sums of `shots`; frame j shows the shot covering time j / fps."""
    import av

    rng = np.random.default_rng(seed)
    bounds = np.cumsum(shots)
    width, height = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(round(float(bounds[-1]) * fps)):
            shot = int(np.searchsorted(bounds, i / fps, side="right"))
            arr = _solid(SHOT_COLOURS[shot % len(SHOT_COLOURS)], size).astype(np.int16)
            arr += rng.integers(-25, 26, arr.shape, dtype=np.int16)
            x = (i * 3) % width
            arr[:, x : x + width // 8] //= 2
            frame = av.VideoFrame.from_ndarray(arr.clip(0, 255).astype(np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_vfr_video(
    path: Path, times: Sequence[float], size: tuple[int, int] = (64, 48), gop: int | None = None
) -> Path:
    """An MKV whose frame i starts at `times[i]` seconds (millisecond clock) and shows
    COLOURS[i % 4]: variable frame rate, gaps included. `gop` sets the keyframe interval (frames)."""
    from fractions import Fraction

    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if gop:
            stream.codec_context.gop_size = gop
            stream.codec_context.options = {"sc_threshold": "0"}
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(_solid(COLOURS[i % len(COLOURS)], size), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
