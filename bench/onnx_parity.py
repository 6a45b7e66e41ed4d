"""The text encoder's ONNX form against torch: retrieval parity, vector parity and encoding speed.

Retrieval: the same index searched twice, with the query vectors from torch (`text_runtime="torch"`)
and from ONNX Runtime (`"auto"`), on
- MultiHop-RAG dev: Hits@4 and Complete@10 of `dense` and `hybrid` (the eval's cached index);
- FinanceBench dev: page Recall@5 of `dense-text` and `hybrid`, on an index given with `--financebench`
  (e.g. the one `mmrag eval financebench --image-model none` built), read as it is.

Vectors: mean cosine between the two runtimes' vectors of every MultiHop dev query. Speed: documents
(MultiHop article facts, 200 texts) and queries encoded by each runtime, interleaved, median of
`--repeats`, on the encoder the offline profile indexes with (bf16 on CPUs with native bf16).

    python bench/onnx_parity.py --financebench runs/financebench/index-d25e7460027c
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_json  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def use_runtime(pipe: Any, runtime: str) -> None:
    """Query vectors from `runtime` from now on (nothing remembered from the other one)."""
    emb = pipe.embedders
    emb.cfg.text_runtime = runtime
    emb._query_text = None
    emb._vectors.clear()


def multihop(runtimes: list[str]) -> dict[str, Any]:
    from mmrag.evals.multihop import EvalConfig, open_index, retrieve
    from mmrag.evals.multihop_data import (
        NULL_TYPE,
        evidence_metrics,
        load_queries,
        query_metrics,
        resolve_data,
    )

    cfg = EvalConfig()
    qpath, cpath, _ = resolve_data(cfg.split, None, None)
    queries = [q for q in load_queries(qpath) if q["question_type"] != NULL_TYPE and q.get("evidence_list")]
    out: dict[str, Any] = {"queries": len(queries)}
    with open_index(cpath, cfg) as pipe:
        for runtime in runtimes:
            use_runtime(pipe, runtime)
            for config in ("dense", "hybrid"):
                rows = []
                for q in queries:
                    facts = [e["fact"] for e in q["evidence_list"] if e.get("fact")]
                    texts, _ = retrieve(pipe, q["query"], config, cfg)
                    rows.append(query_metrics(texts, facts) | evidence_metrics(texts, facts))
                out[f"{config}/{runtime}"] = {
                    m: round(float(np.mean([r[m] for r in rows])), 4) for m in ("hits@4", "complete@10")
                }
    return out


def financebench(index: Path, runtimes: list[str]) -> dict[str, Any]:
    from mmrag.evals.financebench import _rows, _run_configs
    from mmrag.evals.financebench_data import CONFIGS, load_questions, resolve_data, select_split
    from mmrag.pipeline import Pipeline

    qpath, _ = resolve_data(None, None)
    rows = _rows(select_split(load_questions(qpath), "dev"))
    out: dict[str, Any] = {"questions": len(rows), "index": str(index)}
    with Pipeline.load(index) as pipe:
        for runtime in runtimes:
            use_runtime(pipe, runtime)
            configs = {c: dict(CONFIGS[c]) for c in ("dense-text", "hybrid")}
            _run_configs(pipe, rows, configs, 50)
            for c in configs:
                out[f"{c}/{runtime}"] = {
                    "recall@5": round(float(np.mean([r[c]["metrics"]["recall@5"] for r in rows])), 4)
                }
    return out


def vectors_and_speed(repeats: int) -> dict[str, Any]:
    from mmrag.config import MMRAGConfig
    from mmrag.encoders.embedders import Embedders
    from mmrag.evals.multihop_data import load_queries, resolve_data

    qpath, cpath, _ = resolve_data("dev", None, None)
    queries = [q["query"] for q in load_queries(qpath)]
    docs = [" ".join(json.loads(line)["facts"]) for line in cpath.read_text().splitlines()[:200]]
    encoders = {}
    for runtime in ("torch", "onnx"):
        cfg = MMRAGConfig.from_profile("offline").encoders
        cfg.text_runtime = runtime  # type: ignore[assignment]
        encoders[runtime] = Embedders(cfg).text
    q = {r: e.encode_queries(queries) for r, e in encoders.items()}  # type: ignore[union-attr]
    cos = (q["torch"] * q["onnx"]).sum(axis=1)
    seconds: dict[str, dict[str, list[float]]] = {r: {"documents": [], "queries": []} for r in encoders}
    for _ in range(repeats):
        for runtime, enc in encoders.items():
            for kind, texts in (("documents", docs), ("queries", queries)):
                t0 = time.perf_counter()
                enc.encode_text(texts)  # type: ignore[union-attr]
                seconds[runtime][kind].append(time.perf_counter() - t0)
    return {
        "queries": len(queries),
        "cosine_mean": round(float(cos.mean()), 6),
        "cosine_min": round(float(cos.min()), 6),
        "torch_dtype": getattr(encoders["torch"], "dtype", None),
        "texts_per_second": {
            r: {
                k: round(len(docs if k == "documents" else queries) / statistics.median(v), 1)
                for k, v in s.items()
            }
            for r, s in seconds.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--financebench", type=Path, help="a FinanceBench index (offline profile) to search")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "onnx_parity.json")
    args = ap.parse_args()
    runtimes = ["torch", "auto"]
    result: dict[str, Any] = {"bench": "onnx_parity", "machine": machine(), "runtimes": runtimes}
    result["vectors"] = vectors_and_speed(args.repeats)
    print(json.dumps(result["vectors"], indent=2), file=sys.stderr)
    result["multihop_dev"] = multihop(runtimes)
    print(json.dumps(result["multihop_dev"], indent=2), file=sys.stderr)
    if args.financebench:
        result["financebench_dev"] = financebench(args.financebench, runtimes)
        print(json.dumps(result["financebench_dev"], indent=2), file=sys.stderr)
    write_json(result, args.out)


if __name__ == "__main__":
    main()
