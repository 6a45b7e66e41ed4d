"""End to end with the offline profile: index, skip unchanged, re-index changed, bad files, filters.

Real packaged models (EfficientNet-Lite0, MiniLM) over small files the tests write.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mmrag import Pipeline
from mmrag.types import IndexMismatchError

DOCS = {
    "cats.txt": "Cats are small domesticated carnivores. A cat sleeps most of the day and purrs.",
    "finance.txt": "Quarterly revenue rose 12 percent to 4.2 billion dollars; the board raised the dividend.",
    "space.md": "# Rockets\nThe rocket launched from the pad and reached orbit after nine minutes of flight.",
}


def _write_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (root / name).write_text(text)
    img = Image.new("RGB", (96, 64), "white")
    ImageDraw.Draw(img).ellipse((10, 10, 50, 50), fill="red")
    img.save(root / "red.png")
    (root / "bad").mkdir()
    (root / "bad" / "empty.jpg").write_bytes(b"")
    good = root / "red.png"
    (root / "bad" / "truncated.png").write_bytes(good.read_bytes()[:60])
    return root


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    return _write_corpus(tmp_path / "corpus")


def test_index_search_skip_and_reindex(corpus: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    with Pipeline.from_config(profile="offline", index=idx, **{"encoders.ocr": False}) as p:
        report = p.index([corpus])
        assert report.files_indexed == 4
        assert sorted(Path(e.path).name for e in report.errors) == ["empty.jpg", "truncated.png"]
        assert all(e.reason for e in report.errors)
        n = p.store.count()
        assert n == report.points_written >= 4

        hits = p.search("how much did revenue grow", k=3)
        assert Path(hits[0].path).name == "finance.txt"
        hits = p.search("a sleeping cat", k=3, modality="text")
        assert Path(hits[0].path).name == "cats.txt"
        assert all(h.modality == "text" for h in hits)
        only_md = p.search("rocket", k=5, path="*.md")
        assert only_md and {Path(h.path).name for h in only_md} == {"space.md"}
        img_hits = p.search(image=corpus / "red.png", k=1)
        assert img_hits[0].modality == "image" and Path(img_hits[0].path).name == "red.png"

        again = p.index([corpus])
        assert again.files_indexed == 0 and again.files_skipped == 4
        assert p.store.count() == n

        (corpus / "cats.txt").write_text("Dogs bark at the mail carrier every single morning.")
        third = p.index([corpus])
        assert third.files_indexed == 1
        assert p.store.count() == n  # old version's points replaced, not added
        assert Path(p.search("dogs barking at the mail carrier", k=1)[0].path).name == "cats.txt"


def test_load_reopens_with_recorded_encoders_and_refuses_mismatch(corpus: Path, tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    with Pipeline.from_config(profile="offline", index=idx, **{"encoders.ocr": False}) as p:
        p.index([corpus / "finance.txt"])
    with Pipeline.load(idx) as p2:
        assert p2.config.encoders.text == "sentence-transformers/all-MiniLM-L6-v2"
        assert Path(p2.search("dividend", k=1)[0].path).name == "finance.txt"
        info = p2.info()
        assert info["files"] == 1 and info["store"]["points"] >= 1
        assert info["encoders"]["text"]["dim"] == 384
    with pytest.raises(IndexMismatchError, match="text encoder: index has"):
        Pipeline.from_config(profile="offline", index=idx, **{"encoders.text": "BAAI/bge-small-en-v1.5"})


def test_failed_new_version_keeps_old_points(corpus: Path, tmp_path: Path) -> None:
    """A file that was indexed and now turns bad keeps its old points (nothing indexed is lost)."""
    idx = tmp_path / "idx"
    img = tmp_path / "photo.png"
    shutil.copy(corpus / "red.png", img)
    with Pipeline.from_config(profile="offline", index=idx, **{"encoders.ocr": False}) as p:
        assert p.index([img]).files_indexed == 1
        n = p.store.count()
        img.write_bytes(img.read_bytes()[:50])  # now truncated
        report = p.index([img])
        assert len(report.errors) == 1 and report.errors[0].path == str(img)
        assert p.store.count() == n
