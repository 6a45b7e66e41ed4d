"""Overlapped indexing (`ingest.workers` > 0) against the serial path, batching, failures, resume.

EfficientNet-Lite0 (the offline profile's image tower) with BM25 for text (no text embedder, to
keep the tests fast): real preprocessing, real forward passes, points compared with the serial
path's. `ReadAhead` is also checked alone for order and its memory bound.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from media import make_pdf, make_video, truncate  # noqa: E402

import mmrag.index.indexer as indexer_mod  # noqa: E402
from mmrag import Pipeline  # noqa: E402
from mmrag.encoders.efficientnet import EfficientNetEncoder  # noqa: E402
from mmrag.index.workers import End, Failed, FileFeed, Item, ReadAhead  # noqa: E402
from mmrag.store.base import SearchFilter  # noqa: E402
from mmrag.types import Chunk, MMRAGError  # noqa: E402

OPTS = {"encoders.ocr": False, "encoders.text": "none", "ingest.clip_seconds": 2.0}
N_IMAGES = 10


def _photo(i: int) -> Image.Image:
    rng = np.random.default_rng(i)
    base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)  # blocks of colour, scaled up
    return Image.fromarray(base).resize((80, 60), Image.Resampling.NEAREST)


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(N_IMAGES):
        _photo(i).save(root / f"img{i:02d}.jpg")
    (root / "notes.txt").write_text("Ferries cross the harbour every hour. " * 60)
    make_pdf(root / "report.pdf", ["Annual report of the ferry company.", "Dividends rose to two dollars."])
    make_video(root / "clip.mp4", seconds=4, fps=5)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def _index(root: Path, idx: Path, workers: int, **extra: Any) -> tuple[Any, dict[str, Any]]:
    with Pipeline.from_config(
        profile="offline", index=idx, **OPTS, **{"ingest.workers": workers}, **extra
    ) as p:
        report = p.index([root])
        points = {x["id"]: x for x in p.store.scroll(with_vectors=True)}
    return report, points


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows of every image forward pass (`encode_pixels` calls of the EfficientNet encoder)."""
    rows: list[int] = []
    real = EfficientNetEncoder.encode_pixels

    def counting(self: EfficientNetEncoder, pixels: Any, batch_size: int = 32) -> Any:
        rows.append(int(pixels["pixel_values"].shape[0]))
        return real(self, pixels, batch_size)

    monkeypatch.setattr(EfficientNetEncoder, "encode_pixels", counting)
    return rows


def test_overlapped_points_equal_serial(corpus: Path, tmp_path: Path, calls: list[int]) -> None:
    serial, want = _index(corpus, tmp_path / "serial", 0)
    serial_calls = list(calls)
    calls.clear()
    overlapped, got = _index(corpus, tmp_path / "overlap", 2)
    assert [Path(e.path).name for e in overlapped.errors] == ["broken.png"]
    assert [Path(e.path).name for e in serial.errors] == ["broken.png"]
    assert overlapped.files_indexed == serial.files_indexed == N_IMAGES + 3
    assert got.keys() == want.keys() and len(got) == overlapped.points_written
    for pid, point in want.items():
        assert got[pid]["payload"] == point["payload"], pid
        a, b = np.asarray(got[pid]["vectors"].get("image", [])), np.asarray(point["vectors"].get("image", []))
        assert a.shape == b.shape
        if a.size:
            assert float(a @ b) > 0.9999, pid
        assert got[pid]["vectors"]["bm25"].indices == point["vectors"]["bm25"].indices
    # serial: one pass per image file, per PDF group and per clip; overlapped: batches across files
    assert len(serial_calls) >= N_IMAGES + 2
    assert len(calls) < len(serial_calls) and max(calls) > max(serial_calls)


def test_batches_span_files(corpus: Path, tmp_path: Path, calls: list[int]) -> None:
    for p in corpus.iterdir():
        if not p.name.startswith("img"):
            p.unlink()
    report, _ = _index(corpus, tmp_path / "idx", 2, **{"encoders.batch_size": 4})
    assert report.files_indexed == N_IMAGES
    assert calls == [4, 4, 2]  # ten one-image files, four images a pass


def test_bad_files_are_reported_and_old_points_kept(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idx = tmp_path / "idx"
    _index(corpus, idx, 2)
    victim = corpus / "img03.jpg"
    with Pipeline.load(idx) as p:
        old = p.store.count(SearchFilter(paths=[str(victim)]))
    assert old == 1
    truncate(victim, 0.3)  # a new version that cannot be decoded
    # ... and one file whose pixels break the encoder: only that file fails, its batch mates do not
    Image.new("RGB", (80, 60), "black").save(corpus / "black.jpg")
    real = EfficientNetEncoder.encode_pixels

    def picky(self: EfficientNetEncoder, pixels: Any, batch_size: int = 32) -> Any:
        if bool((pixels["pixel_values"].flatten(1).amax(1) < -0.9).any()):  # an all-black image
            raise RuntimeError("the encoder cannot take an all-black image")
        return real(self, pixels, batch_size)

    monkeypatch.setattr(EfficientNetEncoder, "encode_pixels", picky)
    for p in corpus.glob("img0[5-9].jpg"):  # changed files that share a batch with black.jpg
        _photo(100 + int(p.stem[3:])).save(p)
    with Pipeline.load(idx, **{"ingest.workers": 2}) as p:
        report = p.index([corpus])
        reasons = {Path(e.path).name: e.reason for e in report.errors}
        assert reasons.keys() == {"img03.jpg", "black.jpg", "broken.png"}, reasons
        assert "truncated" in reasons["img03.jpg"] and "all-black" in reasons["black.jpg"]
        assert report.files_indexed == 5 and report.files_skipped == N_IMAGES + 3 - 6
        assert p.store.count(SearchFilter(paths=[str(victim)])) == old  # the old version stays
        assert p.store.count(SearchFilter(paths=[str(corpus / "black.jpg")])) == 0
        recorded = {Path(r.path).name for r in p.files.all()}
        assert "black.jpg" not in recorded and "img07.jpg" in recorded


class Boom(Exception):
    """Not a file error: it stops the run, like a bug or an interrupt would."""


def test_resume_after_an_exception_mid_run(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, clean = _index(corpus, tmp_path / "clean", 2)
    idx = tmp_path / "idx"
    real = indexer_mod.embed_chunks
    seen: list[str] = []

    def dying(chunks: list[Chunk], *args: Any, **kwargs: Any) -> Any:
        seen.append(chunks[0].path)
        if len(set(seen)) > 6:  # the seventh file's share of a batch
            raise Boom("stop here")
        return real(chunks, *args, **kwargs)

    monkeypatch.setattr(indexer_mod, "embed_chunks", dying)
    with pytest.raises(Boom):
        _index(corpus, idx, 2, **{"encoders.batch_size": 4, "ingest.commit_seconds": 3600.0})
    monkeypatch.setattr(indexer_mod, "embed_chunks", real)
    with Pipeline.load(idx) as p:
        recorded = p.files.all()
        assert 0 < len(recorded) < N_IMAGES + 3
        # no point of an unrecorded file is left behind
        assert p.store.count() == sum(r.points for r in recorded)
        report = p.index([corpus])
        assert report.files_skipped == len(recorded)
        ids = [x["id"] for x in p.store.scroll()]
    assert len(ids) == len(set(ids)) and set(ids) == clean.keys()


def test_strict_stops_at_the_bad_file(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    first, second = root / "a.jpg", root / "c.jpg"
    _photo(1).save(first)
    (root / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _photo(2).save(second)
    with Pipeline.from_config(profile="offline", index=tmp_path / "idx", **OPTS) as p:
        with pytest.raises(MMRAGError, match="b.png"):
            p.index([first, root / "b.png", second], strict=True)
        assert [r.path for r in p.files.all()] == [str(first)]
        assert p.store.count(SearchFilter(paths=[str(second)])) == 0


def test_read_ahead_keeps_order_and_bounds_memory() -> None:
    sizes = [0, 5, 1, 1, 7, 2, 0, 3, 9, 1, 1, 1, 4]
    paths = [Path(f"f{i}") for i in range(len(sizes))]
    peak = [0]
    lock = threading.Lock()
    queued = [0]

    def prepare(path: Path, feed: FileFeed) -> None:
        i = int(path.name[1:])
        if i == 6:
            raise ValueError("bad file")
        for j in range(sizes[i]):
            img = Image.new("RGB", (2, 2))
            feed.put(Item(Chunk(modality="image", path=path.name, locator=str(j), images=[img])))
            with lock:
                queued[0] += 1
                peak[0] = max(peak[0], queued[0])

    got: list[tuple[str, str]] = []
    with ReadAhead(paths, prepare, workers=3, budget_frames=4, max_items=2) as ahead:
        for feed in ahead:
            for msg in _slowly(feed):
                if isinstance(msg, Item):
                    with lock:
                        queued[0] -= 1
                    got.append((msg.chunk.path, msg.chunk.locator))
                elif isinstance(msg, Failed):
                    got.append((feed.path.name, f"failed: {msg.error}"))
    want = [(f"f{i}", str(j)) for i in range(len(sizes)) for j in range(sizes[i]) if i != 6]
    want.insert(sum(sizes[:6]), ("f6", "failed: bad file"))
    assert got == want
    # the budget (4 frames) holds for files behind the head; the head adds its own 2 at most
    assert peak[0] <= 4 + 2 + 1, peak[0]


def _slowly(feed: FileFeed) -> Iterator[Any]:
    for msg in feed:
        time.sleep(0.002)  # the consumer is the slow side, as the encoders are
        yield msg
        if isinstance(msg, End):
            return
