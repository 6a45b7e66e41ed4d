"""Batches with more distinct texts than the recent-text cache holds (issue 13: a KeyError in
`_encode_texts` broke indexing of long filings once batches spanned files).

The cache is shrunk to a few entries so that a small generated PDF outnumbers it; the real MiniLM
embeds the chunks, through the read-ahead path and the serial path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from media import make_pdf  # noqa: E402

import mmrag.encoders.embedders as embed_mod  # noqa: E402
from mmrag import Pipeline  # noqa: E402

PAGES = 12
OPTS = {"encoders.ocr": False, "encoders.image": "none", "ingest.chunk_words": 20, "ingest.chunk_overlap": 5}


def _page(i: int) -> str:
    words = [f"item{i}x{j} revenue rose {j} percent in quarter {j % 4 + 1}" for j in range(12)]
    return f"Page {i}. " + " ".join(words)


@pytest.fixture()
def filing(tmp_path: Path) -> Path:
    root = tmp_path / "filings"
    root.mkdir()
    make_pdf(root / "a.pdf", [_page(i) for i in range(PAGES)])
    make_pdf(root / "b.pdf", [_page(100 + i) for i in range(PAGES // 2)])
    return root


def _count(root: Path, idx: Path, workers: int) -> tuple[int, dict[str, np.ndarray]]:
    with Pipeline.from_config(profile="offline", index=idx, **OPTS, **{"ingest.workers": workers}) as p:
        report = p.index([root])
        assert not report.errors, report.errors
        points = {x["id"]: x["vectors"]["text"] for x in p.store.scroll(with_vectors=True)}
    return len(points), points


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_larger_than_the_cache(
    filing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    reference, want = _count(filing, tmp_path / "ref", 0)  # the default cache holds every text
    assert reference > 4 * 4  # enough chunks to outnumber the shrunk cache several times
    monkeypatch.setattr(embed_mod, "RECENT_TEXTS", 4)  # read at every call; each pipeline has its own
    n, got = _count(filing, tmp_path / f"small-{workers}", workers)
    assert n == reference
    assert set(got) == set(want)
    for pid, vec in want.items():  # batches differ (padding, bf16 on CPU): same vector to 1e-3
        assert float(np.dot(got[pid], vec)) > 0.999


def test_encode_texts_returns_every_text_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_mod, "RECENT_TEXTS", 2)
    from mmrag.config import MMRAGConfig

    emb = embed_mod.Embedders(MMRAGConfig.load(profile="offline", env={}).encoders)
    texts = [f"sentence number {i}" for i in range(7)]
    texts += texts[:3]  # repeats inside one batch
    vecs = embed_mod._encode_texts(emb, texts, batch_size=4)
    assert len(vecs) == len(texts)
    assert len(emb.recent) <= 2
    direct = emb.text.encode_text(texts[:7]) if emb.text is not None else None
    assert direct is not None
    for i, v in enumerate(vecs):
        assert float(np.dot(v, direct[i % 7])) > 0.999
