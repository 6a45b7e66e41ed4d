"""Ingest: discovery, readers for images, PDFs, videos, subtitles, text and JSON corpora, bad files.

Media is generated at test time (tests/media.py); the real samples come from `shared_data`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from media import (
    BLUE,
    COLOURS,
    GREEN,
    RED,
    YELLOW,
    make_animated_gif,
    make_exif_jpeg,
    make_pdf,
    make_srt,
    make_video,
    make_vtt,
    touch,
    truncate,
)
from PIL import Image

from mmrag.config import IngestConfig
from mmrag.encoders.ocr import Ocr
from mmrag.ingest import (
    discover,
    file_hash,
    find_files,
    iter_chunks,
    kind_of,
)
from mmrag.ingest.images import load_image
from mmrag.types import IngestError


def nearest_colour(img: Image.Image) -> tuple[int, int, int]:
    mean = np.asarray(img.convert("RGB"), dtype=float).reshape(-1, 3).mean(0)
    return min(COLOURS, key=lambda c: float(np.sum((mean - np.array(c)) ** 2)))


# --- discovery -------------------------------------------------------------------------------


def test_kind_of_by_extension(tmp_path: Path) -> None:
    assert kind_of(Path("a.JPG")) == "image"
    assert kind_of(Path("a.pdf")) == "pdf"
    assert kind_of(Path("a.webm")) == "video"
    assert kind_of(Path("a.jsonl")) == "text"
    assert kind_of(Path("a.srt")) is None and kind_of(Path("a.exe")) is None
    Image.new("RGB", (8, 8), RED).save(tmp_path / "still.gif")
    assert kind_of(tmp_path / "still.gif") == "image"
    assert kind_of(make_animated_gif(tmp_path / "anim.gif")) == "video"


def test_discover_walks_sorted_and_skips(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name in [
        "b.pdf",
        "a.jpg",
        "sub/c.mp4",
        "sub/c.srt",
        "sub/z/d.md",
        ".hidden.jpg",
        ".git/x.png",
        "notes.xyz",
        "photo.png",
        "photo.txt",
        "doc.txt",
    ]:
        touch(root / name)
    files, errors = discover(
        [root, tmp_path / "missing.jpg", root / "sub" / "c.srt", root / "a.jpg"], IngestConfig()
    )
    names = [str(f.relative_to(root)) for f in files]
    assert names == ["a.jpg", "b.pdf", "doc.txt", "photo.png", "sub/c.mp4", "sub/z/d.md"]
    assert all(f.is_absolute() for f in files)
    reasons = {Path(e.path).name: e.reason for e in errors}
    assert reasons["missing.jpg"] == "no such file or folder"
    assert "video of the same name" in reasons["c.srt"]
    assert len(errors) == 2


def test_discover_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(tmp_path / "outside" / "o.png")
    touch(root / "real" / "r.png")
    (root / "linked_dir").symlink_to(tmp_path / "outside")
    (root / "real" / "loop").symlink_to(root)
    (root / "file_link.png").symlink_to(tmp_path / "outside" / "o.png")
    (root / "broken.png").symlink_to(tmp_path / "nowhere.png")
    (root / "self.png").symlink_to(root / "self.png")
    found = find_files([root], IngestConfig())
    # a link that leads outside the folder is left out, with a notice naming the option
    assert [f.name for f in found.files] == ["r.png"]
    assert [(Path(e.path).name, e.reason) for e in found.errors] == [
        ("broken.png", "broken symbolic link"),
        ("self.png", "symbolic link loop"),
    ]
    assert [Path(e.path).name for e in found.skipped] == ["file_link.png", "linked_dir"]
    assert all("outside" in e.reason and "--follow-symlinks" in e.reason for e in found.skipped)
    assert found.roots == [os.path.realpath(root)]
    found = find_files([root], IngestConfig(follow_symlinks=True))
    assert [f.name for f in found.files] == ["file_link.png", "o.png", "r.png"]
    assert any(Path(e.path).name == "loop" and "loop" in e.reason for e in found.errors)
    assert not found.skipped
    outside = tmp_path / "outside"
    assert found.roots == [os.path.realpath(root), str(outside.resolve() / "o.png"), str(outside.resolve())]
    # a link inside the folder is no notice
    (root / "inner.png").symlink_to(root / "real" / "r.png")
    again = find_files([root], IngestConfig())
    assert "inner.png" in [f.name for f in again.files] and len(again.skipped) == 2


def test_file_hash_is_streamed_blake2b(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    a, b = touch(tmp_path / "a.bin", data), touch(tmp_path / "b.bin", data)
    assert file_hash(a) == file_hash(b) == hashlib.blake2b(data, digest_size=16).hexdigest()
    assert file_hash(touch(tmp_path / "c.bin", data[:-1])) != file_hash(a)
    # a video's subtitles are part of its content: editing them makes the video count as changed
    video = touch(tmp_path / "v.mp4", data)
    alone = file_hash(video)
    make_srt(tmp_path / "v.srt", [(0, 1, "one")])
    with_subs = file_hash(video)
    make_srt(tmp_path / "v.srt", [(0, 1, "two")])
    assert len({alone, with_subs, file_hash(video)}) == 3


# --- images ----------------------------------------------------------------------------------


def test_exif_rotated_jpeg_comes_out_upright(tmp_path: Path) -> None:
    path = make_exif_jpeg(tmp_path / "rot.jpg", orientation=6)  # stored 60x40, red left, blue right
    [chunk] = iter_chunks(path, IngestConfig())
    img = chunk.images[0]
    assert chunk.modality == "image" and img.mode == "RGB"
    assert img.size == (40, 60) and chunk.meta == {"width": 40, "height": 60}
    # turned 90 degrees clockwise for display: the left (red) half is now on top
    assert nearest_colour(img.crop((0, 0, 40, 25))) == RED
    assert nearest_colour(img.crop((0, 35, 40, 60))) == BLUE


def test_animated_formats_take_first_frame(tmp_path: Path) -> None:
    assert nearest_colour(load_image(make_animated_gif(tmp_path / "a.gif"), 10**6)) == RED
    frames = [Image.new("RGB", (16, 16), c) for c in (GREEN, BLUE)]
    frames[0].save(tmp_path / "a.webp", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    [chunk] = iter_chunks(tmp_path / "a.webp", IngestConfig())
    assert nearest_colour(chunk.images[0]) == GREEN


def test_image_modes_and_caption(tmp_path: Path) -> None:
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png", 10**6)).min() == 255  # transparent is white
    deep = np.linspace(0, 4000, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    arr = np.asarray(load_image(tmp_path / "deep.png", 10**6))
    assert arr.min() == 0 and arr.max() == 255
    big = Image.new("RGB", (3000, 1000), RED)
    big.save(tmp_path / "big.png")
    [chunk] = iter_chunks(tmp_path / "big.png", IngestConfig())
    assert max(chunk.images[0].size) <= 1600 and chunk.meta == {"width": 3000, "height": 1000}
    touch(tmp_path / "big.txt", b"A red banner.\n")
    assert next(iter(iter_chunks(tmp_path / "big.png", IngestConfig()))).text == "A red banner."


# --- PDFs ------------------------------------------------------------------------------------


def test_pdf_pages_and_text_chunks(tmp_path: Path) -> None:
    long_text = " ".join(f"Sentence number {i} is about bananas." for i in range(60))
    path = make_pdf(tmp_path / "doc.pdf", ["Alpha page talks about apples.", long_text])
    cfg = IngestConfig(page_image_px=300, chunk_words=100, chunk_overlap=10)
    chunks = list(iter_chunks(path, cfg))
    pages = [c for c in chunks if c.modality == "page"]
    assert [(c.page, c.locator) for c in pages] == [(0, "page=0"), (1, "page=1")]
    assert "apples" in pages[0].text and "bananas" not in pages[0].text
    assert "Sentence number 59" in pages[1].text
    for c in pages:
        assert max(c.images[0].size) == 300 and c.images[0].mode == "RGB"
        assert c.meta["pages"] == 2
    texts = [c for c in chunks if c.modality == "text"]
    assert [c.locator for c in texts if c.page == 0] == ["page=0;chunk=0"]
    page1 = [c for c in texts if c.page == 1]
    assert len(page1) >= 3 and page1[1].locator == "page=1;chunk=1"
    assert all("apples" not in c.text for c in page1)


@pytest.fixture(scope="module")
def ocr() -> Ocr:
    pytest.importorskip("rapidocr_onnxruntime")
    from mmrag.encoders.ocr import Ocr

    return Ocr()


def test_pdf_page_without_text_layer_uses_ocr(tmp_path: Path, shared_data: Path, ocr: Ocr) -> None:
    scan = Image.open(shared_data / "images" / "skimage" / "page.png")
    path = make_pdf(tmp_path / "scan.pdf", [], image_pages=[scan])
    [page] = iter_chunks(path, IngestConfig())
    assert page.text is None and page.images
    chunks = list(iter_chunks(path, IngestConfig(), ocr=ocr))
    assert "segmentation" in chunks[0].text.lower()
    assert [c.locator for c in chunks] == ["page=0", "page=0;chunk=0"]


# --- videos ----------------------------------------------------------------------------------


def test_video_clips_times_frames_and_subtitles(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", seconds=25, fps=10, seconds_per_colour=2.5)
    make_srt(tmp_path / "clip.srt", [(1, 3, "alpha"), (9, 12, "bravo"), (21, 22, "charlie")])
    cfg = IngestConfig(clip_seconds=10, frames_per_clip=4)
    chunks = list(iter_chunks(video, cfg))
    assert [(c.t_start, c.t_end) for c in chunks] == [(0, 10), (10, 20), (20, pytest.approx(25, abs=0.11))]
    assert [c.locator for c in chunks][:2] == ["t=0.000-10.000", "t=10.000-20.000"]
    assert [c.text for c in chunks] == ["alpha\nbravo", "bravo", "charlie"]
    # four frames spread over the clip: one from each 2.5 s colour band, in order
    assert [nearest_colour(im) for im in chunks[0].images] == [RED, GREEN, BLUE, YELLOW]
    for c in chunks:
        assert len(c.images) == 4 and c.modality == "video"
        shown = {COLOURS[int(t / 2.5) % 4] for t in np.arange(c.t_start, c.t_end, 0.1)}
        assert {nearest_colour(im) for im in c.images} <= shown
    assert chunks[0].meta["fps"] == 10 and (chunks[0].meta["width"], chunks[0].meta["height"]) == (64, 48)
    assert chunks[0].meta["duration"] == pytest.approx(25, abs=0.11)


def test_short_video_with_vtt_and_short_tail(tmp_path: Path) -> None:
    video = make_video(tmp_path / "short.mp4", seconds=1.5, fps=10)
    make_vtt(tmp_path / "short.vtt", [(0.2, 0.8, "tiny <b>clip</b>")])
    [chunk] = iter_chunks(video, IngestConfig(clip_seconds=10))
    assert (chunk.t_start, chunk.t_end) == (0, pytest.approx(1.5, abs=0.11))
    assert chunk.text == "tiny clip" and 1 <= len(chunk.images) <= 4
    tail = make_video(tmp_path / "tail.mp4", seconds=10.5, fps=10)
    clips = [(c.t_start, c.t_end) for c in iter_chunks(tail, IngestConfig(clip_seconds=5))]
    assert clips == [(0, 5), (5, pytest.approx(10.5, abs=0.11))]  # the 0.5 s tail joins the clip before


def test_animated_gif_is_a_video(tmp_path: Path) -> None:
    [chunk] = iter_chunks(make_animated_gif(tmp_path / "anim.gif"), IngestConfig())
    assert chunk.modality == "video" and chunk.t_end == pytest.approx(0.4, abs=0.01)
    assert [nearest_colour(im) for im in chunk.images] == list(COLOURS)


# --- bad files -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.jpg", "empty.pdf", "empty.mp4", "empty.txt"])
def test_zero_byte_files(tmp_path: Path, name: str) -> None:
    with pytest.raises(IngestError, match="zero-byte file"):
        list(iter_chunks(touch(tmp_path / name, b""), IngestConfig()))


def test_truncated_and_corrupt_files(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "cut.jpg", quality=90)
    with pytest.raises(IngestError, match="truncated JPEG: image file is truncated"):
        list(iter_chunks(truncate(tmp_path / "cut.jpg"), IngestConfig()))
    with pytest.raises(IngestError, match="not an image"):
        list(iter_chunks(touch(tmp_path / "fake.png", b"not a png at all"), IngestConfig()))
    with pytest.raises(IngestError, match="not a PDF or corrupt"):
        list(iter_chunks(touch(tmp_path / "bad.pdf", b"%PDF-1.7\n garbage"), IngestConfig()))
    with pytest.raises(IngestError, match="not a video"):
        list(iter_chunks(touch(tmp_path / "bad.mp4", os.urandom(4096)), IngestConfig()))
    video = make_video(tmp_path / "cut.mp4", seconds=4, fps=10)  # index (moov) at the end: cut off
    with pytest.raises(IngestError, match="truncated"):
        list(iter_chunks(truncate(video, 0.6), IngestConfig()))
    video = make_video(tmp_path / "fast.mp4", seconds=20, fps=10, size=(128, 96), faststart=True)
    with pytest.raises(IngestError, match="truncated video: frames stop at|corrupt video"):
        list(iter_chunks(truncate(video, 0.7), IngestConfig(clip_seconds=5)))


def test_decompression_bomb_refused_from_header(tmp_path: Path) -> None:
    # a 9000 x 8000 PNG cut after its header: refused for its size before any pixel is decoded
    Image.new("1", (9000, 8000)).save(tmp_path / "bomb.png")
    truncate(tmp_path / "bomb.png", 0.5)
    with pytest.raises(IngestError, match="image has 72000000 pixels, over the 64000000 limit"):
        list(iter_chunks(tmp_path / "bomb.png", IngestConfig()))
    # past Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS) the message is ours all the same
    Image.new("1", (20000, 10000)).save(tmp_path / "bomb.png")
    truncate(tmp_path / "bomb.png", 0.5)
    with pytest.raises(IngestError, match="image has 200000000 pixels, over the 64000000 limit"):
        list(iter_chunks(tmp_path / "bomb.png", IngestConfig()))
    Image.new("RGB", (100, 100)).save(tmp_path / "small.png")
    with pytest.raises(IngestError, match="over the 5000 limit"):
        list(iter_chunks(tmp_path / "small.png", IngestConfig(max_image_pixels=5000)))


def test_pdf_limits_and_encryption(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "two.pdf", ["one", "two"])
    from fpdf import FPDF

    with pytest.raises(IngestError, match="2 pages, over the 1 limit"):
        list(iter_chunks(path, IngestConfig(max_pdf_pages=1)))
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text="hidden")
    pdf.output(str(tmp_path / "locked.pdf"))
    with pytest.raises(IngestError, match="encrypted PDF"):
        list(iter_chunks(tmp_path / "locked.pdf", IngestConfig()))


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    import av

    with av.open(str(tmp_path / "sound.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 16000), dtype=np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(IngestError, match="no video stream"):
        list(iter_chunks(tmp_path / "sound.mp4", IngestConfig()))


# --- real samples ----------------------------------------------------------------------------


def test_shared_videos_all_give_clips(shared_data: Path) -> None:
    folder = shared_data / "video"
    info = {v["file"]: v for v in json.loads((folder / "video_info.json").read_text())}
    files, errors = discover([folder], IngestConfig())
    videos = [f for f in files if kind_of(f) == "video"]
    assert not errors and sorted(f.name for f in videos) == sorted(info)
    for path in videos:
        clips = list(iter_chunks(path, IngestConfig()))
        assert clips, path.name
        assert all(c.images and c.t_end > c.t_start for c in clips), path.name
        assert [c.t_start for c in clips[1:]] == [c.t_end for c in clips[:-1]], path.name
        assert max(clips[0].images[0].size) <= 384
        expected = info[path.name]["duration_s"]
        if expected is not None:
            assert clips[-1].t_end == pytest.approx(expected, abs=0.1), path.name


def test_shared_financebench_pdf_pages(shared_data: Path) -> None:
    import pypdfium2

    pdfs = sorted(
        (shared_data / "docs" / "financebench" / "pdfs").glob("*.pdf"), key=lambda p: p.stat().st_size
    )
    path = pdfs[0]
    chunks = list(iter_chunks(path, IngestConfig()))
    pages = [c for c in chunks if c.modality == "page"]
    assert [c.page for c in pages] == list(range(len(pypdfium2.PdfDocument(str(path)))))
    assert sum(bool(c.text) for c in pages) > len(pages) / 2
    assert any(c.modality == "text" for c in chunks)


def test_shared_skimage_images_load(shared_data: Path) -> None:
    folder = shared_data / "images" / "skimage"
    captions = json.loads((folder / "captions.json").read_text())
    for entry in captions:
        [chunk] = iter_chunks(folder / entry["image"], IngestConfig())
        with Image.open(folder / entry["image"]) as raw:
            assert chunk.images[0].size == raw.size and chunk.images[0].mode == "RGB"


def test_ocr_reads_scanned_page(shared_data: Path, ocr: Ocr) -> None:
    text = ocr(Image.open(shared_data / "images" / "skimage" / "page.png"))
    lines = text.lower().splitlines()
    assert "segmentation" in lines[0]
    assert any("extreme parts" in line for line in lines)
    assert text.lower().index("segmentation") < text.lower().index("markers")
