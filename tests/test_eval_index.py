"""The cached eval index (`evals/_index.py`): built from scratch over real filings, keyed by the code.

Issue 13: FinanceBench numbers came from an index that older code had built, and a fresh build of
the same filings crashed. The slow test builds one over real FinanceBench PDFs (batches that span
files; a text seen again after the cache moved on, which is what made the old code lose it); with
the old `_encode_texts` it stops with the issue's KeyError.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mmrag.config import MMRAGConfig
from mmrag.evals import _index

FILINGS = [  # two 10-Ks (296 pages) whose paragraphs recur a few hundred chunks apart: that
    # recurrence, with the read-ahead batches spanning files, made the old cache drop a text mid-batch
    "BLOCK_2020_10K.pdf",
    "CORNING_2020_10K.pdf",
]


def test_key_changes_with_the_index_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "src" / "fake_indexing"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "chunking.py").write_text("WORDS = 180\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setattr(_index, "INDEX_CODE", (*_index.INDEX_CODE, "fake_indexing"))
    doc = tmp_path / "a.txt"
    doc.write_text("hello")
    mcfg = MMRAGConfig.load(profile="offline", env={})
    before = _index.index_key([doc], mcfg)
    assert _index.index_key([doc], mcfg) == before  # stable while nothing changes
    (pkg / "chunking.py").write_text("WORDS = 200\n")
    _index._code_version.cache_clear()  # read once per process: a new process sees the new code
    assert _index.index_key([doc], mcfg) != before
    sys.modules.pop("fake_indexing", None)


def test_key_covers_the_indexing_modules() -> None:
    """Every module that turns a file into points is hashed: ingest, encoders, store, the indexer."""
    hashed = {p.resolve() for m in _index.INDEX_CODE for p in _index._sources(m)}
    import mmrag.encoders.embedders
    import mmrag.index.indexer
    import mmrag.ingest.pdf
    import mmrag.store.edge

    for mod in (mmrag.encoders.embedders, mmrag.index.indexer, mmrag.ingest.pdf, mmrag.store.edge):
        assert Path(str(mod.__file__)).resolve() in hashed


@pytest.mark.slow
@pytest.mark.data
def test_real_filings_index_from_scratch(shared_data: Path, tmp_path: Path) -> None:
    pdfs = [shared_data / "docs" / "financebench" / "pdfs" / name for name in FILINGS]
    if missing := [p.name for p in pdfs if not p.is_file()]:
        pytest.skip(f"FinanceBench PDFs not found: {missing}")
    from mmrag.store.base import SearchFilter

    mcfg = MMRAGConfig.load(profile="offline", env={})
    mcfg.encoders.ocr = True  # as the eval indexes them
    pipe, report = _index.open_cached("financebench", pdfs, mcfg, tmp_path / "runs")
    with pipe:
        assert report.files_indexed == len(pdfs) and not report.errors
        pages = list(pipe.store.scroll(SearchFilter(modalities=["page"])))
        assert len(pages) == 158 + 138
        assert report.points_written > 256  # one run held more distinct texts than the recent-text cache
        hit = pipe.search("Corning controlling interest in HSG consolidated results", k=5)  # 2020 10-K
        assert any("CORNING" in Path(h.path).name for h in hit)
    # the same files, settings and code reopen the same folder without re-indexing
    pipe2, again = _index.open_cached("financebench", pdfs, mcfg, tmp_path / "runs")
    with pipe2:
        assert again.files_indexed == 0 and again.files_skipped == len(pdfs)
