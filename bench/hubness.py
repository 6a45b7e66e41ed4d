"""Dual-bank hubness correction (DBNorm, `mmrag/hubness.py`) on MultiHop-RAG dev: does it help dense search?

One run opens the MultiHop-RAG index (`evals/multihop.py::open_index`, MiniLM text space), retrieves
the top 10 text chunks of every non-null query by plain dense search, then for every bank size,
pair of inverse temperatures (b1 query bank, b2 gallery bank) and method (DualIS, DualDIS) builds
the banks and retrieves again through `corrected_search` (the same candidates, rescored). Per
setting: Hits@4, Hits@10, MRR@10, MAP@10 (official MultiHop-RAG rule) and the skewness of the
10-occurrence over all text points (the hubness measure of the paper). Every setting is tuned on
dev; test is never read here. The query bank is sentences of the indexed chunks, embedded as queries.

    python bench/hubness.py                             # writes bench/results/hubness_dev.json
    python bench/hubness.py --sizes 250 --betas 0 10    # a smaller grid
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import write_json  # noqa: E402  (bench/ is on the path: this script's folder)

from mmrag.retrieve.banks import build_banks  # noqa: E402  (after the path set-up, like bench/generate.py)
from mmrag.retrieve.hubness import (  # noqa: E402
    BETA_GALLERY,
    BETA_QUERY,
    DEFAULT_METHOD,
    HubnessBanks,
    corrected_search,
    k_occurrence_skewness,
)
from mmrag.store.base import ScoredPoint  # noqa: E402


def _evals() -> Any:
    """`mmrag.evals.multihop`, also from a checkout whose editable install points elsewhere."""
    try:
        from mmrag.evals import multihop
    except ModuleNotFoundError:
        spec = importlib.util.spec_from_file_location(
            "mmrag.evals", ROOT / "evals" / "__init__.py", submodule_search_locations=[str(ROOT / "evals")]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["mmrag.evals"] = module
        spec.loader.exec_module(module)
        from mmrag.evals import multihop
    return multihop


def _mean(per: list[dict[str, float]], metrics: Sequence[str]) -> dict[str, float]:
    return {m: round(float(np.mean([p[m] for p in per])), 4) for m in metrics}


def paired(base: list[dict[str, float]], new: list[dict[str, float]], metric: str) -> dict[str, Any]:
    """Queries better / worse under `new`, and a paired bootstrap 95% interval of the mean change."""
    d = np.array([n[metric] - b[metric] for b, n in zip(base, new, strict=True)])
    boots = np.random.default_rng(0).choice(d, size=(2000, len(d))).mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {
        "metric": metric,
        "mean_change": round(float(d.mean()), 4),
        "ci95": [round(float(lo), 4), round(float(hi), 4)],
        "better": int((d > 0).sum()),
        "worse": int((d < 0).sum()),
    }


@dataclass
class Setup:
    """The dev queries with their gold facts, and each query's dense and BM25 candidates."""

    mh: Any
    store: Any
    facts: list[list[str]]
    types: list[str]
    qvecs: np.ndarray
    dense: list[list[ScoredPoint]]
    bm25: list[list[ScoredPoint]]
    gallery: int
    k: int
    prefetch: int
    rrf_k: int

    def rescore(self, banks: HubnessBanks | None, method: str | None, n: int) -> list[list[ScoredPoint]]:
        """The top `n` of each query's dense candidates, rescored as `corrected_search` does."""
        if banks is None:
            return [c[:n] for c in self.dense]
        out = []
        for v, c in zip(self.qvecs, self.dense, strict=True):
            new = banks.adjust("text", v, [p.id for p in c], np.array([p.score for p in c]), method)  # type: ignore[arg-type]
            out.append([c[i] for i in np.argsort(-new, kind="stable")[:n]])
        return out

    def score(self, lists: list[list[ScoredPoint]]) -> tuple[list[dict[str, float]], float]:
        texts = [[str(p.payload.get("text") or "") for p in h[: self.k]] for h in lists]
        per = [self.mh.query_metrics(t, f) for t, f in zip(texts, self.facts, strict=True)]
        skew = k_occurrence_skewness([[p.id for p in h[: self.k]] for h in lists], self.gallery)
        return per, round(skew, 3)

    def hybrid(self, banks: HubnessBanks | None, method: str | None) -> list[list[ScoredPoint]]:
        """Dense (corrected or not) and BM25 lists fused by RRF, as `mmrag.retrieve.hybrid` does."""
        from mmrag.retrieve.hybrid import fuse

        dense = self.rescore(banks, method, self.prefetch)
        return [fuse([d, b], "rrf", self.k, self.rrf_k) for d, b in zip(dense, self.bm25, strict=True)]

    def per_type(self, per: list[dict[str, float]]) -> dict[str, Any]:
        return self.mh.aggregate([{"type": t, "metrics": m} for t, m in zip(self.types, per, strict=True)])


def setup(pipe: Any, mh: Any, queries: list[dict[str, Any]], candidates: int, k: int) -> Setup:
    from mmrag.store.base import BM25, Prefetch, SearchFilter

    store, emb = pipe.store, pipe.embedders
    flt = SearchFilter(modalities=["text"])
    qvecs = emb.text.encode_text([q["query"] for q in queries])
    dense = [store.query([Prefetch("text", dense=v, limit=candidates)], candidates, flt) for v in qvecs]
    pf = pipe.config.search.prefetch
    bm25 = []
    for q in queries:
        sparse = emb.bm25.embed_query(q["query"])
        bm25.append(store.query([Prefetch(BM25, sparse=sparse, limit=pf)], pf, flt) if sparse.indices else [])
    facts = [[e["fact"] for e in q["evidence_list"] if e.get("fact")] for q in queries]
    types = [q["question_type"] for q in queries]
    rrf_k = pipe.config.search.rrf_k
    return Setup(mh, store, facts, types, qvecs, dense, bm25, store.count(flt), k, pf, rrf_k)


def sweep(su: Setup, args: argparse.Namespace, encode: Any, tmp: Path) -> list[dict[str, Any]]:
    """Every (bank size, b1, b2, method) of the grid on dense retrieval."""
    grid = []
    for size, b1, b2 in itertools.product(args.sizes, args.betas, args.betas):
        t1 = time.perf_counter()
        banks = build_banks(
            su.store, ["text"], size, tmp, encode, seed=args.seed, beta_query=b1, beta_gallery=b2
        )
        build = time.perf_counter() - t1
        sb = banks.spaces["text"]
        tops = sb.rows([c[0].id for c in su.dense if c])
        known = tops[tops >= 0]
        active = {  # share of queries whose top-1 is in each activation set (DualDIS applies that bank)
            "query_bank": round(float(sb.act_q[known].sum() / len(tops)), 3),
            "gallery_bank": round(float(sb.act_g[known].sum() / len(tops)), 3),
        }
        for method in args.methods:
            per, skew = su.score(su.rescore(banks, method, su.k))
            row = {
                "size": size,
                "beta_query": b1,
                "beta_gallery": b2,
                "method": method,
                "metrics": _mean(per, su.mh.METRICS),
                "skewness@10": skew,
                "bank_sizes": [len(sb.query_bank), len(sb.gallery_bank)],
                "activated": active,
                "build_seconds": round(build, 2),
            }
            grid.append(row)
            print(json.dumps(row), file=sys.stderr)
    return grid


def run(args: argparse.Namespace) -> dict[str, Any]:
    mh = _evals()
    qpath, cpath, label = mh.resolve_data(args.split, None, None)
    queries = [
        q for q in mh.load_queries(qpath) if q["question_type"] != mh.NULL_TYPE and q.get("evidence_list")
    ]
    t0 = time.perf_counter()
    pipe = mh.open_index(cpath, mh.EvalConfig(split=args.split, runs=args.runs, configs=["dense"]))
    try:
        index_seconds = time.perf_counter() - t0
        su = setup(pipe, mh, queries, args.candidates, args.k)
        cache: dict[str, np.ndarray] = {}

        def encode(space: str, texts: list[str]) -> np.ndarray:  # each sentence embedded once per run
            todo = [t for t in dict.fromkeys(texts) if t not in cache]
            if todo:
                cache.update(zip(todo, pipe.embedders.text.encode_text(todo), strict=True))
            return np.stack([cache[t] for t in texts])

        with tempfile.TemporaryDirectory() as tmp:
            grid = sweep(su, args, encode, Path(tmp))
            best = max(grid, key=lambda r: r["metrics"]["mrr@10"] + r["metrics"]["hits@4"])
            default = (args.default_size, BETA_QUERY, BETA_GALLERY, DEFAULT_METHOD)
            chosen = {
                "best_on_dev": best,
                "module_default": next((r for r in grid if _key(r) == default), None),
            }
            report = {
                name: detail(su, row, args, encode, Path(tmp))
                for name, row in chosen.items()
                if row is not None
            }
        base_per, base_skew = su.score(su.rescore(None, None, su.k))
        hyb_base, _ = su.score(su.hybrid(None, None))
        report["best_on_dev"]["selection"] = "max MRR@10 + Hits@4 over the whole grid, on dev (optimistic)"
        beat = sum(r["metrics"]["mrr@10"] > _mean(base_per, mh.METRICS)["mrr@10"] for r in grid)
        return {
            "suite": "hubness",
            "label": label,
            "split": args.split,
            "queries": len(queries),
            "text_points": su.gallery,
            "candidates": args.candidates,
            "k": args.k,
            "seed": args.seed,
            "model": pipe.config.encoders.text,
            "query_bank": "one sentence from each of `size` sampled chunks, embedded by the text embedder",
            "plain_dense": {
                "metrics": _mean(base_per, mh.METRICS),
                "skewness@10": base_skew,
                "per_type": su.per_type(base_per),
            },
            "plain_hybrid": {
                "metrics": _mean(hyb_base, mh.METRICS),
                "fusion": f"rrf k={su.rrf_k}, {su.prefetch} per list, the dense one cut from the rescored",
            },
            **report,
            "grid_settings_beating_plain_mrr": f"{beat} of {len(grid)}",
            "grid": grid,
            "index_seconds": round(index_seconds, 1),
            "seconds": round(time.perf_counter() - t0, 1),
            "machine": {"python": platform.python_version(), "cpu": platform.machine()},
        }
    finally:
        pipe.close()


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["size"], row["beta_query"], row["beta_gallery"], row["method"])


def detail(
    su: Setup, row: dict[str, Any], args: argparse.Namespace, encode: Any, tmp: Path
) -> dict[str, Any]:
    """One setting against plain search, dense and hybrid: per type, and paired per query."""
    banks = build_banks(
        su.store,
        ["text"],
        row["size"],
        tmp,
        encode,
        seed=args.seed,
        beta_query=row["beta_query"],
        beta_gallery=row["beta_gallery"],
    )
    check_real_path(su, banks, row["method"], args.candidates)
    base, _ = su.score(su.rescore(None, None, su.k))
    per, _ = su.score(su.rescore(banks, row["method"], su.k))
    hyb_base, _ = su.score(su.hybrid(None, None))
    hyb, _ = su.score(su.hybrid(banks, row["method"]))
    return {
        **row,
        "per_type": su.per_type(per),
        "vs_plain_dense": [paired(base, per, m) for m in ("mrr@10", "hits@4")],
        "hybrid": {
            "metrics": _mean(hyb, su.mh.METRICS),
            "vs_plain_hybrid": [paired(hyb_base, hyb, m) for m in ("mrr@10", "hits@4")],
        },
    }


def check_real_path(su: Setup, banks: HubnessBanks, method: str, candidates: int) -> None:
    """`corrected_search` (the path search uses) returns the lists the sweep's rescoring gave."""
    from mmrag.store.base import SearchFilter

    flt = SearchFilter(modalities=["text"])
    for v, h in zip(su.qvecs[:20], su.rescore(banks, method, su.k)[:20], strict=True):
        real = corrected_search(su.store, banks, "text", v, su.k, flt, candidates, method)  # type: ignore[arg-type]
        if [p.id for p in real] != [p.id for p in h]:
            raise SystemExit("corrected_search disagrees with the sweep's rescoring")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="dev", choices=["dev"], help="tuning split (dev only)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 150, 1000])
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0])
    ap.add_argument("--methods", nargs="+", default=["dualis", "dualdis"], choices=["dualis", "dualdis"])
    ap.add_argument("--candidates", type=int, default=100, help="nearest points rescored per query")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--default-size", type=int, default=1000, help="bank size reported as the module default")
    ap.add_argument("--runs", default="runs", help="where open_index caches the MultiHop-RAG index")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "hubness_dev.json"))
    args = ap.parse_args()
    result = run(args)
    write_json(result, Path(args.out))
    b, top = result["plain_dense"], result["best_on_dev"]
    print(f"plain dense: {b['metrics']}  skew {b['skewness@10']}")
    print(
        f"best on dev: {top['metrics']}  skew {top['skewness@10']}  "
        f"(size {top['size']}, b1 {top['beta_query']}, b2 {top['beta_gallery']}, {top['method']})"
    )


if __name__ == "__main__":
    main()
