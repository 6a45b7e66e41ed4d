"""The `page` space end to end on a tiny random ColQwen2: PDF pages indexed as multi-vectors (with and
without patch pooling), text queries scored by MaxSim against numpy, fusion with text and BM25, the
manifest, and `export`/`import` of a collection holding multi-vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("fpdf")

from media import make_pdf  # noqa: E402
from tiny_retrievers import tiny_colqwen2  # noqa: E402

from mmrag import Pipeline  # noqa: E402
from mmrag.ingest.pdf import render_page  # noqa: E402
from mmrag.store.multivector import hierarchical_pool, maxsim, mean_vector  # noqa: E402

PAGES = [
    "Quarterly revenue rose to nine million.",
    "The ferry timetable changes in winter.",
    "Cash flow table.",
]


@pytest.fixture(scope="module")
def colqwen2(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_colqwen2(tmp_path_factory.mktemp("colqwen2") / "m"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pages")
    make_pdf(root / "report.pdf", PAGES)
    return root


def _index(root: Path, corpus: Path, model: str, pool: int) -> Path:
    idx = root / f"idx-{pool}"
    overrides = {
        "encoders.page": model,
        "encoders.page_pool": pool,
        "encoders.image": None,
        "encoders.ocr": False,
        "ingest.page_image_px": 32,
    }
    with Pipeline.from_config(profile="offline", index=idx, **overrides) as p:
        assert p.index([corpus]).files_indexed == 1
        p.save()
    return idx


def test_pages_are_found_by_maxsim(tmp_path: Path, corpus: Path, colqwen2: str) -> None:
    from mmrag.encoders import load_page_encoder

    enc = load_page_encoder(colqwen2, device="cpu")
    idx = _index(tmp_path, corpus, colqwen2, pool=1)
    with Pipeline.load(idx) as p:
        manifest = p.info()
        assert p.store.schema.multi == {"page": 16} and p.store.schema.dense["page_mean"] == 16
        rows = {
            r["payload"]["page"]: r["vectors"]
            for r in p.store.scroll(with_vectors=True)
            if r["payload"]["modality"] == "page"
        }
        hits = p.search("cash flow table", k=3, spaces=["page"])
        fused = p.search("cash flow table", k=5)
    assert manifest["points_by_modality"]["page"] == 3
    q = enc.encode_queries(["cash flow table"])[0]
    renders = [render_page(corpus / "report.pdf", i, 32) for i in range(3)]
    docs = [pv.vectors for pv in enc.encode_pages(renders)]
    for i, d in enumerate(docs):
        assert np.allclose(np.asarray(rows[i]["page"]), d, atol=1e-4)  # what the store holds
        assert np.allclose(np.asarray(rows[i]["page_mean"]), mean_vector(d), atol=1e-4)
    assert [h.page for h in hits] == sorted(range(3), key=lambda i: -maxsim(q, docs[i]))
    for h in hits:
        assert h.modality == "page" and h.score == pytest.approx(maxsim(q, docs[h.page or 0]), abs=1e-3)
    # fused with BM25 and MiniLM: the text chunk that says it is among the hits
    assert any(h.modality == "text" and "Cash flow" in (h.text or "") for h in fused)
    assert any(h.modality == "page" for h in fused)


def test_pooling_cuts_storage(tmp_path: Path, corpus: Path, colqwen2: str) -> None:
    full = _index(tmp_path, corpus, colqwen2, pool=1)
    pooled = _index(tmp_path, corpus, colqwen2, pool=2)
    sizes = {}
    for name, idx in (("full", full), ("pooled", pooled)):
        with Pipeline.load(idx) as p:
            sizes[name] = {
                r["payload"]["page"]: np.asarray(r["vectors"]["page"])
                for r in p.store.scroll(with_vectors=True)
                if r["payload"]["modality"] == "page"
            }
    from mmrag.encoders import load_page_encoder

    enc = load_page_encoder(colqwen2, device="cpu")
    for i in range(3):
        pv = enc.encode_pages([render_page(corpus / "report.pdf", i, 32)])[0]
        want = hierarchical_pool(pv.vectors, 2, pool=pv.patches)
        assert sizes["pooled"][i].shape == want.shape and np.allclose(sizes["pooled"][i], want, atol=1e-4)
        assert len(sizes["pooled"][i]) < len(sizes["full"][i])


def test_export_import_keeps_multivectors(tmp_path: Path, corpus: Path, colqwen2: str) -> None:
    from mmrag.index.transfer import export_bundle, import_bundle

    idx = _index(tmp_path, corpus, colqwen2, pool=1)
    export_bundle(idx, tmp_path / "bundle")
    import_bundle(tmp_path / "bundle", tmp_path / "copy")
    with Pipeline.load(idx) as a, Pipeline.load(tmp_path / "copy") as b:
        va = {r["id"]: r["vectors"] for r in a.store.scroll(with_vectors=True)}
        vb = {r["id"]: r["vectors"] for r in b.store.scroll(with_vectors=True)}
        ha = a.search("cash flow table", k=3, spaces=["page"])
        hb = b.search("cash flow table", k=3, spaces=["page"])
    assert va.keys() == vb.keys()
    multi = [i for i in va if "page" in va[i]]
    assert len(multi) == 3
    for i in multi:
        assert np.allclose(np.asarray(va[i]["page"]), np.asarray(vb[i]["page"]), atol=1e-6)
    assert [(h.id, round(h.score, 4)) for h in ha] == [(h.id, round(h.score, 4)) for h in hb]


def test_cli_index_with_a_page_encoder_and_models_ls(tmp_path: Path, corpus: Path, colqwen2: str) -> None:
    import json

    from typer.testing import CliRunner

    from mmrag.cli import app

    runner = CliRunner()
    idx = tmp_path / "idx"
    args = ["index", str(corpus), "--index", str(idx), "--profile", "offline", "--page-encoder", colqwen2]
    result = runner.invoke(app, [*args, "--page-pool", "2", "--json"], env={"MMRAG_ENCODERS_OCR": "0"})
    assert result.exit_code == 0, result.output
    manifest = json.loads((idx / "manifest.json").read_text())
    assert manifest["store"]["multi"] == {"page": 16} and manifest["store"]["dense"]["page_mean"] == 16
    assert manifest["encoders"]["page"]["pool"] == 2 and manifest["config"]["encoders"]["page_pool"] == 2
    listed = runner.invoke(app, ["models", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    families = {m["id"]: m["family"] for m in json.loads(listed.stdout)}
    for model_id, family in {
        "vidore/colqwen2-v1.0-hf": "colqwen2",
        "vidore/colpali-v1.3-hf": "colpali",
        "Qwen/Qwen2.5-VL-7B-Instruct": "vlm",
        "Qwen/Qwen3-VL-8B-Instruct": "vlm",
        "HuggingFaceTB/SmolVLM2-2.2B-Instruct": "vlm",
        "llava-hf/llava-onevision-qwen2-7b-ov-hf": "vlm",
        "conse-efficientnet-lite0-minilm": "conse",
    }.items():
        assert families.get(model_id) == family, model_id
