"""`mmrag search` end to end at 100k points: query embedding, BM25, hybrid fusion, payloads.

The index is an offline-profile index (MiniLM text space, BM25, an EfficientNet image space) holding
`--size` real passages (FinanceBench filings and MultiHop-RAG articles, see `bench/textvecs.py`). Its
dense vectors come from a static (model2vec-style) distillation of the same MiniLM (1M passages embed in under
a minute; the model itself takes ~10 ms each here), its BM25 vectors from the passages themselves;
queries are embedded by the real MiniLM, as `mmrag search` does.

Measured, on the 313 MultiHop test and FinanceBench questions (a pass over the dev questions first):
- warm, in process: `Pipeline.retrieve` p50/p95 and its stages (query embedding, store search);
- the store search alone on the same prefetches, so the share of each stage is a ratio;
- cold: the `mmrag search --json` command a user types, a fresh process each time (start-up,
  imports, model loading included), p50 of `--cli-runs` runs.

    python bench/search.py                   # 100k points (about 3 minutes once the vectors are cached)
    python bench/search.py --size 1m
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import textvecs  # noqa: E402
from common import machine, write_json, write_result  # noqa: E402
from store import parse_size  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BATCH = 1024


def build_index(folder: Path, n: int) -> dict[str, Any]:
    """An offline-profile index of `n` passages, written straight to its store (no file reading)."""
    from mmrag import Pipeline
    from mmrag.config import MMRAGConfig
    from mmrag.store import PointData, point_id

    texts = textvecs.passages(max(n, 100_000))[:n]
    vecs = textvecs.embed(texts, "static")
    cfg = MMRAGConfig.load(profile="offline", env={}, index=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with Pipeline(cfg) as p:
        p.save()
        store = p.store
        for b in range(0, n, BATCH):
            chunk = texts[b : b + BATCH]
            sparse = p.embedders.bm25.embed_documents(chunk)
            pts = []
            for j, (text, sp) in enumerate(zip(chunk, sparse, strict=True)):
                i = b + j
                payload = {
                    "modality": "text",
                    "path": f"/bench/doc{i // 100}.txt",
                    "locator": f"#{i % 100}",
                    "text": text,
                    "file_hash": "bench",
                }
                pts.append(PointData(point_id("bench", str(i)), {"text": vecs[i]}, sp, payload))
            store.upsert(pts)
        store.flush()
        store.optimize()
        p.save()
    return {"points": n, "build_s": round(time.perf_counter() - t0, 1)}


def pct(xs: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(xs, 50)), 2),
        "p95_ms": round(float(np.percentile(xs, 95)), 2),
    }


def warm(folder: Path, dev: list[str], test: list[str]) -> dict[str, Any]:
    from mmrag import Pipeline

    with Pipeline.load(folder) as p:
        for q in dev:  # load the models, map the shard's pages
            p.retrieve(q)
        total, embed, search = [], [], []
        for q in test:
            t0 = time.perf_counter()
            r = p.retrieve(q)
            total.append((time.perf_counter() - t0) * 1000)
            embed.append(r.timings.get("embed", 0.0) * 1000)
            search.append(r.timings.get("search", 0.0) * 1000)
        hits = len(r.hits)
    out = {"total": pct(total), "embed": pct(embed), "store_search": pct(search), "hits": hits}
    out["share_of_p50"] = {
        "embed": round(out["embed"]["p50_ms"] / out["total"]["p50_ms"], 3),
        "store_search": round(out["store_search"]["p50_ms"] / out["total"]["p50_ms"], 3),
    }
    return out


def routing(folder: Path, dev: list[str], test: list[str], rounds: int = 3) -> dict[str, Any]:
    """Warm `Pipeline.retrieve` without routing and with it (`filter`, `boost`), interleaved per
    question in one run, on an index whose documents carry metadata (`mmrag index` of real files)."""
    from mmrag import Pipeline

    modes = ("off", "filter", "boost")
    with Pipeline.load(folder) as p:
        p.router()  # the one scroll that collects the documents' metadata, paid once per process
        for q in dev:
            for m in modes:
                p.retrieve(q, route=m)
        times: dict[str, list[float]] = {m: [] for m in modes}
        routed = 0
        for i in range(rounds):
            for j, q in enumerate(test):
                for m in modes[(i + j) % 3 :] + modes[: (i + j) % 3]:  # no mode always goes first
                    p.embedders._vectors.clear()  # every call embeds its question, as a new one does
                    t0 = time.perf_counter()
                    r = p.retrieve(q, route=m)
                    times[m].append((time.perf_counter() - t0) * 1000)
                    routed += bool(m == "filter" and r.filters)
    out: dict[str, Any] = {m: pct(t) for m, t in times.items()}
    out["routed_share"] = round(routed / (rounds * len(test)), 3)
    for m in ("filter", "boost"):
        out[f"{m}_over_off_p50"] = round(out[m]["p50_ms"] / out["off"]["p50_ms"], 3)
    return out


def cold(folder: Path, queries: list[str], runs: int) -> dict[str, Any]:
    """Wall time of `mmrag search` in a fresh process, as typed."""
    exe = shutil.which("mmrag") or ""
    cmd = [exe] if exe else [sys.executable, "-m", "mmrag"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    walls = []
    for q in queries[:runs]:
        t0 = time.perf_counter()
        out = subprocess.run(
            [*cmd, "search", q, "--index", str(folder), "--json"], capture_output=True, text=True, env=env
        )
        walls.append((time.perf_counter() - t0) * 1000)
        if out.returncode != 0:
            raise SystemExit(f"mmrag search failed: {out.stderr[-2000:]}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mmrag.cli"], check=True, env=env)
    import_ms = (time.perf_counter() - t0) * 1000
    return {"runs": len(walls), **pct(walls), "python_import_cli_ms": round(import_ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="100k")
    ap.add_argument("--cli-runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="build (or reuse) the index here")
    ap.add_argument("--out", type=Path, default=RESULTS / "search.json")
    ap.add_argument(
        "--routing-index",
        type=Path,
        default=None,
        help="also time routing (off / filter / boost) on this index of real documents with metadata, "
        "with the FinanceBench questions (dev half to warm up, test half timed)",
    )
    ap.add_argument("--routing-only", action="store_true", help="time routing only (needs --routing-index)")
    args = ap.parse_args()
    if args.routing_only:
        if args.routing_index is None:
            raise SystemExit("--routing-only needs --routing-index")
        r = {
            "machine": machine(libs=("qdrant-edge-py", "torch")),
            "routing": _routing_run(args.routing_index),
        }
        write_json(r, args.out)
        print(json.dumps(r["routing"], indent=1))
        return
    n = parse_size(args.size)
    qs = textvecs.queries()
    dev, test = qs[: textvecs.DEV_QUERIES], qs[textvecs.DEV_QUERIES :]
    result: dict[str, Any] = {
        "machine": machine(libs=("numpy", "qdrant-edge-py", "torch", "transformers")),
        "config": {"size": n, "cli_runs": args.cli_runs},
    }
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="mmrag-bench-search-"))
    try:
        if not (workdir / "manifest.json").is_file():
            result["index"] = build_index(workdir, n)
        result["warm"] = w = warm(workdir, dev, test)
        result["cold_cli"] = c = cold(workdir, test, args.cli_runs)
        if args.routing_index is not None:
            result["routing"] = _routing_run(args.routing_index)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\n== mmrag search, {n:,} points (offline profile: MiniLM + BM25 hybrid), {len(test)} questions =="
    )
    print(f"warm Pipeline.retrieve   p50 {w['total']['p50_ms']} ms, p95 {w['total']['p95_ms']} ms")
    print(f"  query embedding        p50 {w['embed']['p50_ms']} ms ({w['share_of_p50']['embed']:.0%} of it)")
    print(
        f"  store search (hybrid)  p50 {w['store_search']['p50_ms']} ms "
        f"({w['share_of_p50']['store_search']:.0%})"
    )
    print(
        f"cold `mmrag search`      p50 {c['p50_ms']} ms over {c['runs']} runs "
        f"(import of the CLI alone {c['python_import_cli_ms']} ms); cold / warm = "
        f"{c['p50_ms'] / w['total']['p50_ms']:.0f}x"
    )
    if "routing" in result:
        r = result["routing"]
        print(
            f"routing on {args.routing_index.name}: p50 off {r['off']['p50_ms']} ms, filter "
            f"{r['filter']['p50_ms']} ms ({r['filter_over_off_p50']}x), boost {r['boost']['p50_ms']} ms "
            f"({r['boost_over_off_p50']}x); {r['routed_share']:.0%} of the questions routed"
        )
    write_result(result, args.out, plot)
    print(f"wrote {args.out}")


def _routing_run(folder: Path) -> dict[str, Any]:
    from mmrag.evals.financebench_data import load_questions, resolve_data, select_split

    questions = load_questions(resolve_data(None, None)[0])
    dev = [q["question"] for q in select_split(questions, "dev")]
    test = [q["question"] for q in select_split(questions, "test")]
    return {"questions": len(test), **routing(folder, dev, test)}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = result["warm"]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    parts = [("query embedding", w["embed"]["p50_ms"]), ("store search", w["store_search"]["p50_ms"])]
    rest = max(w["total"]["p50_ms"] - sum(v for _, v in parts), 0.0)
    left = 0.0
    for (name, v), color in zip([*parts, ("other", rest)], ["#4c72b0", "#dd8452", "#999999"], strict=True):
        ax.barh(["warm p50"], [v], left=left, color=color, label=f"{name} {v:.1f} ms")
        left += v
    ax.set_xlabel("ms")
    ax.set_title(
        f"mmrag search at {result['config']['size']:,} points, "
        f"cold CLI p50 {result['cold_cli']['p50_ms'] / 1000:.1f} s"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
