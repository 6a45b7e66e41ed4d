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
