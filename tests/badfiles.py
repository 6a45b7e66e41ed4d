"""A corpus of hostile and broken inputs, generated at test time (no binaries in the repository).

`make_bad_corpus(root)` writes the files and returns, for each bad file, the path the indexer will
report and a few words its reason must contain, and the good files that must still be indexed.
Everything is small: the decompression bomb is a 9,000 x 9,000 PNG of 10 KB, the long PDF has
blank pages, videos are 64 x 48.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from media import make_srt, make_video, truncate  # noqa: E402


@dataclass
class BadCorpus:
    """What `make_bad_corpus` wrote."""

    root: Path
    bad: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Reported path -> words (any of them, lower case) the reason must contain."""
    ignored: dict[str, str] = field(default_factory=dict)
    """Path of a readable file with nothing to index -> a word its reason must contain."""
    good: dict[str, str] = field(default_factory=dict)
    """Path of a file that must be indexed -> a query that must find it."""
    notes: list[str] = field(default_factory=list)
    """Cases left out on this machine, with the reason."""


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def make_png(path: Path, width: int, height: int, rows: int, bit_depth: int = 8, ended: bool = True) -> Path:
    """A grayscale PNG whose header says `width` x `height` but whose data holds only `rows` rows.

    With `rows == height` it is a valid PNG; the data is compressed in a stream, so a 9,000 x 9,000
    one-bit image (a decompression bomb: 10 KB that decodes to 81 megapixels) costs no memory here.
    `ended=False` leaves the zlib stream open, as a cut-off download would.
    """
    row_bytes = (width * bit_depth + 7) // 8
    comp = zlib.compressobj(9)
    row = b"\0" + bytes(row_bytes)  # filter byte 0, then black pixels
    body = b"".join(comp.compress(row) for _ in range(rows))
    body += comp.flush() if ended else comp.flush(zlib.Z_SYNC_FLUSH)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """A container with one AAC audio stream and no video stream."""
    import av

    rate = 16000
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_empty_video(path: Path) -> Path:
    """A container with a video stream and not a single frame (a 0-second video)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()  # write the header although no frame comes
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_blank_pdf(path: Path, pages: int, password: str | None = None, text: str = "") -> Path:
    """A PDF of `pages` pages (only the first one carries `text`), encrypted when `password` is given."""
    import pytest

    fpdf = pytest.importorskip(
        "fpdf", reason="PDF tests write their PDFs with fpdf2 (pip install 'mmrag[dev]')"
    )
    pdf = fpdf.FPDF(unit="pt", format=(200, 200))
    pdf.set_font("Helvetica", size=10)
    if password is not None:
        pdf.set_encryption(owner_password=password + "-owner", user_password=password)
    for i in range(pages):
        pdf.add_page()
        if i == 0 and text:
            pdf.multi_cell(0, 12, text)
    pdf.output(str(path))
    return path


def _flip_middle(path: Path) -> Path:
    """Overwrite the first 4 KB (the header and index) with noise: no demuxer recognises it."""
    data = bytearray(path.read_bytes())
    noise = np.random.default_rng(0).integers(0, 256, size=min(4096, len(data)), dtype=np.uint8)
    data[: len(noise)] = noise.tobytes()
    path.write_bytes(bytes(data))
    return path


def _images(root: Path, c: BadCorpus) -> None:
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    for ext, fmt in ((".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP")):
        (root / f"zero{ext}").write_bytes(b"")
        c.bad[str(root / f"zero{ext}")] = ("zero-byte",)
        img.save(root / f"cut{ext}", format=fmt)
        truncate(root / f"cut{ext}", 0.4)
        c.bad[str(root / f"cut{ext}")] = ("truncated", "corrupt", "cannot read")
    make_png(root / "bomb.png", 9000, 9000, rows=9000, bit_depth=1)
    c.bad[str(root / "bomb.png")] = ("decompression bomb", "pixels")
    # a header claiming 10 gigapixels over one row of data: refused from the header, nothing decoded
    make_png(root / "liar.png", 100_000, 100_000, rows=1)
    c.bad[str(root / "liar.png")] = ("decompression bomb", "pixels")
    # a header claiming 4,000 x 4,000 over ten rows of data: under the limit, so decoding finds out
    make_png(root / "short.png", 4000, 4000, rows=10, ended=False)
    c.bad[str(root / "short.png")] = ("truncated", "corrupt")


def _videos(root: Path, c: BadCorpus) -> None:
    for ext in (".mp4", ".mkv"):
        truncate(make_video(root / f"cut{ext}", seconds=6, fps=5), 0.4)
        c.bad[str(root / f"cut{ext}")] = (
            "truncated",
            "corrupt",
            "no audio or video stream",
            "no video frame",
        )
        _flip_middle(make_video(root / f"noise{ext}", seconds=3, fps=5))
        c.bad[str(root / f"noise{ext}")] = ("not a video or corrupt", "corrupt", "no video stream")
    make_audio_only(root / "audio_only.mp4")
    c.bad[str(root / "audio_only.mp4")] = ("no video stream",)
    for ext in (".mp4", ".mkv"):
        make_empty_video(root / f"empty{ext}")
        c.bad[str(root / f"empty{ext}")] = ("no video frame", "no audio or video stream", "end of file")
    (root / "garbage.mkv").write_bytes(os.urandom(3000))
    c.bad[str(root / "garbage.mkv")] = ("not a video or corrupt",)


def _pdfs(root: Path, c: BadCorpus) -> None:
    make_blank_pdf(root / "locked.pdf", 1, password="hunter2", text="Secret quarterly numbers.")
    c.bad[str(root / "locked.pdf")] = ("encrypted",)
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n" + os.urandom(2000))
    c.bad[str(root / "corrupt.pdf")] = ("not a pdf or corrupt", "corrupt")
    make_blank_pdf(root / "long.pdf", 2001)
    c.bad[str(root / "long.pdf")] = ("2001 pages", "max_pdf_pages")
    truncate(make_blank_pdf(root / "cut.pdf", 3, text="A page that will be cut off."), 0.5)
    c.bad[str(root / "cut.pdf")] = ("corrupt", "cannot be")


def _text_and_names(root: Path, c: BadCorpus) -> None:
    (root / "binary.txt").write_bytes(b"\x00\x01\x02" * 500)
    c.bad[str(root / "binary.txt")] = ("binary",)
    (root / "broken.jsonl").write_bytes(b'{"text": "fine line"}\n{"text": \n')
    c.bad[str(root / "broken.jsonl")] = ("invalid json on line 2",)
    (root / "latin1.json").write_bytes('[{"body": "caf\u00e9 cr\u00e8me"}]'.encode("latin-1"))
    c.bad[str(root / "latin1.json")] = ("not utf-8",)
    (root / "norecords.json").write_text('[{"title": "no body here"}]')
    c.ignored[str(root / "norecords.json")] = "no text records"  # not bad input: reported as ignored
    # a file named with bytes that are not UTF-8: its name cannot be stored or printed as given
    raw = os.fsencode(root) + b"/caf\xe9.txt"
    with open(raw, "wb") as f:
        f.write(b"Non UTF-8 file name.")
    c.bad[os.fsencode(raw).decode("utf-8", "backslashreplace")] = ("not valid utf-8",)
    # a name that reads as console markup: it must be printed as it is, not as a red "oops.png"
    (root / "[red]oops.png").write_bytes(b"")
    c.bad[str(root / "[red]oops.png")] = ("zero-byte",)
    # a named pipe with a text extension: opening it would block forever
    for name in ("pipe.txt", "fifo.gif"):  # a GIF is opened to tell animated from still
        os.mkfifo(root / name)
        c.bad[str(root / name)] = ("not a regular file",)
    (root / "self.jpg").symlink_to(root / "self.jpg")
    c.bad[str(root / "self.jpg")] = ("symbolic link loop",)
    (root / "dangling.png").symlink_to(root / "nowhere.png")
    c.bad[str(root / "dangling.png")] = ("broken symbolic link",)
    # a folder link back to the root: not followed by default (follow_symlinks), so no error
    (root / "loop").symlink_to(root, target_is_directory=True)
    locked = root / "unreadable.txt"
    locked.write_text("You cannot read this.")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root ignores permission bits: the file is readable after all
        locked.unlink()
        c.notes.append("unreadable file: running as root, permission bits do not stop reads")
    else:
        c.bad[str(locked)] = ("permission denied",)


def _good(root: Path, c: BadCorpus) -> None:
    (root / "ferries.txt").write_text(
        "The electric ferries carried nine million passengers across the harbour."
    )
    c.good[str(root / "ferries.txt")] = "electric ferries harbour passengers"
    newline = root / "two\nlines.txt"
    newline.write_text("Volcanic ash from the northern range grounded regional flights for weeks.")
    c.good[str(newline)] = "volcanic ash grounded flights"
    # a video whose subtitles are in cp1252 with malformed cues between good ones
    make_video(root / "talk.mp4", seconds=4, fps=5)
    srt = root / "talk.srt"
    make_srt(srt, [(0.5, 1.5, "Bienvenue au caf\u00e9 des m\u00e9t\u00e9ores.")])
    srt.write_bytes(
        srt.read_text(encoding="utf-8").encode("cp1252")
        + b"\n2\n00:00:99,000 --> 00:00:01,000\nbad seconds\n\n3\n00:00:03,000 --> 00:00:02,000\nbackwards\n"
        + b"\n4\nnot a timing line\n\n\xff\xfe\x00garbage\n"
    )
    c.good[str(root / "talk.mp4")] = "caf\u00e9 des m\u00e9t\u00e9ores"


def make_bad_corpus(root: Path) -> BadCorpus:
    """Write the bad-input corpus (and three good files) under `root`, which must not exist yet."""
    root.mkdir(parents=True)
    c = BadCorpus(root)
    _images(root, c)
    _videos(root, c)
    _pdfs(root, c)
    _text_and_names(root, c)
    _good(root, c)
    return c
