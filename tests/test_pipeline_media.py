"""Pipeline over generated media: video clips with subtitles, PDF pages, bad files; both store backends."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from media import make_exif_jpeg, make_pdf, make_srt, make_video, truncate, two_tone  # noqa: E402

from mmrag import Pipeline  # noqa: E402

PAGES = [
    "Annual report. Our fleet of electric ferries carried nine million passengers across the harbour.",
    "Risk factors. Volcanic ash from the northern range may ground regional flights for weeks.",
    "Dividends. The board approved a special dividend of two dollars per share payable in March.",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    video = make_video(root / "talk.mp4", seconds=12, fps=5)
    make_srt(
        root / "talk.srt",
        [(1.0, 3.0, "Welcome to the cooking show."), (7.0, 9.0, "Now we whisk the eggs with sugar.")],
    )
    make_pdf(root / "report.pdf", PAGES)
    make_exif_jpeg(root / "photo.jpg", orientation=6, image=two_tone())
    bad = root / "bad"
    bad.mkdir()
    truncate(make_video(bad / "cut.mp4", seconds=6, fps=5), 0.4)
    truncate(make_exif_jpeg(bad / "cut.jpg", orientation=1, image=Image.new("RGB", (200, 200), "blue")), 0.3)
    (bad / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 50)
    (bad / "zero.png").write_bytes(b"")
    assert video.exists()
    return root


@pytest.mark.parametrize("url", [None, ":memory:"], ids=["edge", "client"])
def test_media_corpus(corpus: Path, tmp_path: Path, url: str | None) -> None:
    overrides = {"encoders.ocr": False, "ingest.clip_seconds": 5.0, "store.url": url}
    with Pipeline.from_config(profile="offline", index=tmp_path / "idx", **overrides) as p:
        report = p.index([corpus])
        failed = sorted(Path(e.path).name for e in report.errors)
        assert failed == ["corrupt.pdf", "cut.jpg", "cut.mp4", "zero.png"], report.errors
        assert report.files_indexed == 3

        clip = p.search("whisking eggs and sugar", k=1, modality="video")[0]
        assert Path(clip.path).name == "talk.mp4"
        assert clip.t_start is not None and clip.t_end is not None
        assert clip.t_start <= 7.0 < clip.t_end
        assert "whisk" in (clip.text or "")
        early = p.search("whisking eggs and sugar", k=3, modality="video", time="0-4")
        assert early and all(h.t_start is not None and h.t_start <= 4 for h in early)

        page = p.search("special dividend per share", k=1, modality="page")[0]
        assert Path(page.path).name == "report.pdf" and page.page == 2
        in_range = p.search("special dividend per share", k=5, pages="1-2")
        assert in_range and all(h.page in (0, 1) for h in in_range)
        text_hit = p.search("volcanic ash grounding flights", k=1, modality="text")[0]
        assert text_hit.page == 1

        counts = p.info()["points_by_modality"]
        assert counts["page"] == 3 and counts["image"] == 1 and counts["video"] >= 2
