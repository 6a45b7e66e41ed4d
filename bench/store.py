"""The embedded store at scale: HNSW (ef tuned), with and without int8 quantization, against exact search.

Data: real text. Points are passages of the FinanceBench filings and MultiHop-RAG articles, queries
the 562 real questions of both datasets, embedded by all-MiniLM-L6-v2 (`--data minilm`) or by its
model2vec-style static distillation (`--data static`, the default: 1M passages embed in under a minute
here, the real model would take hours), lifted isometrically to 512-d (see `bench/textvecs.py`).
`--check-size` first runs both embedders at one size, so the JSON shows how alike they index.

Per size, for three embedded shards built through `EdgeStore`: float vectors in RAM; int8 scalar
quantization with the originals also in RAM; int8 in RAM with the originals on disk (memory-mapped,
read only to rescore):
- ingest: points/s of `Store.upsert` (batches of 1024) and the seconds `optimize()` takes to build
  HNSW (and the int8 copies);
- query: p50/p95 ms and recall@10 against numpy brute force, for HNSW at each `hnsw_ef` (float,
  int8 with rescoring at oversampling 2) on the 249 MultiHop dev questions, where ef is tuned;
- the tuned configuration (the smallest ef reaching `--target-recall` on dev) through
  `Store.query`, the API the pipeline uses, on the 313 other questions (MultiHop test and
  FinanceBench), and exact search (`exact=True`, the baseline) on the same; the speed-up of HNSW
  with int8 over exact search is the printed ratio;
- qdrant-client's local mode (pure Python) on the same points, up to `--client-max-size`: the
  ingest and query ratios of the embedded engine over it;
- memory (RSS of a fresh process that opens the shard and runs the queries, minus the same process
  before opening it) and disk (allocated blocks), both also per million points.

    python bench/store.py                  # 10k and 100k points (a few minutes); writes store.json/.png
    python bench/store.py --size 1m        # adds 1M points (about 25 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import textvecs  # noqa: E402
from common import machine, write_result  # noqa: E402
from store_report import plot, report  # noqa: E402

from mmrag.store import PointData, Prefetch, SearchOptions, StoreSchema, point_id  # noqa: E402
from mmrag.store.edge import EdgeStore  # noqa: E402

BATCH = 1024
SPACE = "text"
RESULTS = Path(__file__).parent / "results"
# float vectors in RAM; int8 copies in RAM with the originals in RAM; int8 in RAM, originals on disk
MODES = ("float", "int8", "int8-disk")


def parse_size(s: str) -> int:
    s = s.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(s[-1:], 1)
    return int(float(s.rstrip("km")) * mult)


def pid(i: int) -> str:
    return point_id("bench", str(i))


def load_data(kind: str, n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(points, queries), unit vectors in `dim` dimensions."""
    x = textvecs.lift(textvecs.embed(textvecs.passages(max(n, 100_000))[:n], kind), dim)
    q = textvecs.lift(textvecs.embed(textvecs.queries(), kind), dim)
    return x, q


def ground_truth(x: np.ndarray, q: np.ndarray, k: int = 10) -> list[set[str]]:
    """Exact top-k ids per query by numpy brute force (chunked: 1M points fit)."""
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, len(x), 100_000):
        s = q @ x[start : start + 100_000].T
        cand_s = np.concatenate([best_s, s], axis=1)
        cand_i = np.concatenate(
            [best_i, np.broadcast_to(np.arange(start, start + s.shape[1]), s.shape)], axis=1
        )
        top = np.argpartition(-cand_s, k, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, top, axis=1), np.take_along_axis(cand_i, top, axis=1)
    return [{pid(int(i)) for i in row} for row in best_i]


def timed(search: Callable[[np.ndarray], list[str]], q: np.ndarray, truth: list[set[str]]) -> dict[str, Any]:
    """p50/p95 latency in ms and mean recall@10 of `search`, in steady state: the queries run once
    unmeasured first (the first pass after opening a shard maps its pages: see `bench/search.py`
    for the cold, per-process latency)."""
    for v in q:
        search(v)
    lat, rec = [], []
    for v, t in zip(q, truth, strict=True):
        t0 = time.perf_counter()
        got = search(v)
        lat.append((time.perf_counter() - t0) * 1000)
        rec.append(len(set(got[:10]) & t) / 10)
    return {
        "queries": len(q),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p95_ms": round(float(np.percentile(lat, 95)), 3),
        "recall@10": round(float(np.mean(rec)), 4),
    }


def raw_search(store: EdgeStore, **params: Any) -> Callable[[np.ndarray], list[str]]:
    """A search on the shard with explicit `SearchParams` (to sweep ef without reopening)."""
    import qdrant_edge as qe

    quant = params.pop("quant", None)
    sp = qe.SearchParams(quantization=quant, **params)

    def run(v: np.ndarray) -> list[str]:
        req = qe.QueryRequest(limit=10, query=qe.Query.Nearest(v.tolist(), using=SPACE), params=sp)
        return [str(h.id) for h in store.shard.query(req)]

    return run


def allocated_mb(folder: Path) -> float:
    return round(sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file()) / 2**20, 1)


def build(folder: Path, x: np.ndarray, schema: StoreSchema, opts: SearchOptions) -> dict[str, Any]:
    with EdgeStore(folder, schema, opts) as store:
        upsert_s = 0.0
        for b in range(0, len(x), BATCH):
            pts = [
                PointData(pid(b + j), {SPACE: v}, payload={"path": f"/d/{(b + j) // 100}"})
                for j, v in enumerate(x[b : b + BATCH])
            ]
            t = time.perf_counter()
            store.upsert(pts)
            upsert_s += time.perf_counter() - t
        t = time.perf_counter()
        store.flush()
        store.optimize()
        optimize_s = time.perf_counter() - t
        info = store.shard.info()
    return {
        "upsert_s": round(upsert_s, 2),
        "points_per_s": round(len(x) / upsert_s),
        "optimize_s": round(optimize_s, 2),
        "points_per_s_with_index": round(len(x) / (upsert_s + optimize_s)),
        "indexed_vectors": info.indexed_vectors_count,
        "segments": info.segments_count,
    }


MEMORY_PROBE = r"""
import json, sys, numpy as np
def rss():
    for ln in open("/proc/self/status"):
        if ln.startswith("VmRSS"):
            return int(ln.split()[1]) / 1024
sys.path.insert(0, sys.argv[4])
from mmrag.store import Prefetch, SearchOptions, StoreSchema
from mmrag.store.edge import EdgeStore
q = np.load(sys.argv[2])
before = rss()
a = json.loads(sys.argv[3])
opts = SearchOptions(**a["opts"])
with EdgeStore(sys.argv[1], StoreSchema(dense={"text": q.shape[1]}, on_disk=a["on_disk"]), opts) as s:
    opened = rss()
    for v in q:
        s.query([Prefetch("text", dense=v)], limit=10)
    print(json.dumps({"open_mb": round(opened - before, 1), "after_queries_mb": round(rss() - before, 1)}))
"""


def memory(folder: Path, q: np.ndarray, opts: SearchOptions, on_disk: bool) -> dict[str, Any]:
    """RSS added by opening the shard and querying it, in a fresh process."""
    qfile = folder.parent / "queries.npy"
    np.save(qfile, q)
    args = json.dumps(
        {"opts": {"quantization": opts.quantization, "hnsw_ef": opts.hnsw_ef}, "on_disk": on_disk}
    )
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(folder), str(qfile), args, root],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def bench_client(x: np.ndarray, q: np.ndarray, truth: list[set[str]], dim: int) -> dict[str, Any]:
    """qdrant-client's local mode (pure Python, brute force): the embedded engine's baseline."""
    import warnings

    from mmrag.store.server import ClientStore

    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    with ClientStore(":memory:", StoreSchema(dense={SPACE: dim})) as store:
        t = time.perf_counter()
        for b in range(0, len(x), BATCH):
            store.upsert(
                [
                    PointData(pid(b + j), {SPACE: v}, payload={"path": "/d"})
                    for j, v in enumerate(x[b : b + BATCH])
                ]
            )
        upsert_s = time.perf_counter() - t
        res = timed(lambda v: [h.id for h in store.query([Prefetch(SPACE, dense=v)], limit=10)], q, truth)
    return {"points_per_s": round(len(x) / upsert_s), "query": res}


def bench_size(kind: str, n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    x, q = load_data(kind, n, args.dim)
    truth = ground_truth(x, q)
    # tune ef on the MultiHop dev questions, report on the others (MultiHop test, FinanceBench)
    nd = textvecs.DEV_QUERIES
    qd, td, qt, tt = q[:nd], truth[:nd], q[nd:], truth[nd:]
    out: dict[str, Any] = {
        "data": kind,
        "points": n,
        "dim": args.dim,
        "queries": {"dev": len(qd), "test": len(qt)},
    }
    out["prepare_s"] = round(time.perf_counter() - t0, 1)
    import qdrant_edge as qe

    nq_exact = min(len(q), args.exact_queries)
    for mode in args.modes:
        folder = workdir / f"{kind}-{n}-{mode}"
        opts = SearchOptions(quantization="none" if mode == "float" else "int8")
        schema = StoreSchema(
            dense={SPACE: args.dim},
            hnsw_m=args.m,
            hnsw_ef_construct=args.ef_construct,
            on_disk=mode == "int8-disk",
        )
        r: dict[str, Any] = {"ingest": build(folder, x, schema, opts)}
        with EdgeStore(folder, schema, opts) as store:
            if "exact" not in out:
                # brute force over the original vectors (int8 copies ignored): the baseline
                ignore = qe.QuantizationSearchParams(ignore=True)
                out["exact"] = timed(
                    raw_search(store, exact=True, quant=ignore), qt[:nq_exact], tt[:nq_exact]
                )
            r["hnsw_ef"] = {}
            for ef in args.ef:
                quant = (
                    None
                    if mode == "float"
                    else qe.QuantizationSearchParams(rescore=True, oversampling=args.oversampling)
                )
                r["hnsw_ef"][str(ef)] = timed(raw_search(store, hnsw_ef=ef, quant=quant), qd, td)
            if mode != "float":
                quant = qe.QuantizationSearchParams(rescore=False)
                r["no_rescore_ef" + str(args.ef[-1])] = timed(
                    raw_search(store, hnsw_ef=args.ef[-1], quant=quant), qd, td
                )
            need = args.target_recall + args.tune_margin
            ok = [ef for ef in args.ef if r["hnsw_ef"][str(ef)]["recall@10"] >= need]
            tuned = ok[0] if ok else args.ef[-1]
            r["tuned_ef"] = tuned
        # the tuned setting through the pipeline's API, reopened with those options
        topts = SearchOptions(quantization=opts.quantization, hnsw_ef=tuned, oversampling=args.oversampling)
        with EdgeStore(folder, schema, topts) as store:
            r["tuned"] = timed(
                lambda v, s=store: [h.id for h in s.query([Prefetch(SPACE, dense=v)], limit=10)], qt, tt
            )
        r["disk_mb"] = {"segments": allocated_mb(folder / "segments"), "wal": allocated_mb(folder / "wal")}
        r["memory_mb"] = memory(folder, qt, topts, schema.on_disk)
        empty = workdir / "empty"
        EdgeStore(empty, schema, topts).close()
        r["memory_mb"]["empty_shard_mb"] = memory(empty, qt, topts, schema.on_disk)["after_queries_mb"]
        r["disk_mb"]["empty_shard"] = allocated_mb(empty / "segments")
        shutil.rmtree(empty, ignore_errors=True)
        per_m = 1e6 / n
        # what the points add: the process with this shard minus the same process with an empty one
        r["per_million_points"] = {
            "disk_gb": round((r["disk_mb"]["segments"] - r["disk_mb"]["empty_shard"]) * per_m / 1024, 2),
            "ram_gb": round(
                (r["memory_mb"]["after_queries_mb"] - r["memory_mb"]["empty_shard_mb"]) * per_m / 1024, 2
            ),
        }
        shutil.rmtree(folder, ignore_errors=True)
        out[mode] = r
    if n <= args.client_max_size:
        out["client_local"] = bench_client(x, qt[: args.client_queries], tt[: args.client_queries], args.dim)
    exact = out["exact"]
    best = "int8" if "int8" in out else args.modes[-1]
    tuned = out[best]["tuned"]
    ram = {m: out[m]["memory_mb"]["after_queries_mb"] for m in args.modes}
    out["ratios"] = {f"exact_p95_over_hnsw_{best}_p95": round(exact["p95_ms"] / tuned["p95_ms"], 1)}
    if "float" in ram:
        for m in args.modes[1:]:
            out["ratios"][f"{m}_ram_over_float_ram"] = round(ram[m] / max(ram["float"], 1e-9), 3)
    out["target"] = {
        "p95_ms_max": 20.0,
        "recall_min": args.target_recall,
        "met": bool(tuned["p95_ms"] < 20.0 and tuned["recall@10"] >= args.target_recall),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10k,100k", help="comma-separated point counts (k/m suffixes)")
    ap.add_argument("--size", default=None, help="one more (large) size, e.g. 1m")
    ap.add_argument("--data", default="static", choices=["static", "minilm"])
    ap.add_argument(
        "--check-size", default="20k", help="size at which both embedders are compared ('0': skip)"
    )
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--exact-queries", type=int, default=200, help="queries timed for exact search")
    ap.add_argument("--ef", default="16,32,64,128,256", help="hnsw_ef values swept")
    ap.add_argument("--m", type=int, default=16, help="HNSW graph degree")
    ap.add_argument("--ef-construct", type=int, default=100)
    ap.add_argument("--oversampling", type=float, default=2.0)
    ap.add_argument("--modes", default=",".join(MODES), help=f"shards to build, of {','.join(MODES)}")
    ap.add_argument(
        "--large-modes", default="int8", help="shards built for --size (each 1M build takes minutes)"
    )
    ap.add_argument(
        "--client-max-size", type=parse_size, default=100_000, help="qdrant-client local mode up to here"
    )
    ap.add_argument(
        "--client-queries", type=int, default=100, help="queries timed on qdrant-client local mode"
    )
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument(
        "--tune-margin", type=float, default=0.01, help="dev recall above the target when tuning ef"
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "store.json")
    args = ap.parse_args()
    args.ef = [int(e) for e in args.ef.split(",") if e]
    args.modes = [m for m in args.modes.split(",") if m]
    large_modes = [m for m in args.large_modes.split(",") if m]
    if unknown := set(args.modes + large_modes) - set(MODES):
        raise SystemExit(f"unknown modes {sorted(unknown)} (use {', '.join(MODES)})")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    if args.size:
        sizes.append(parse_size(args.size))
    result: dict[str, Any] = {
        "machine": machine(libs=("numpy", "qdrant-edge-py", "qdrant-client", "torch", "transformers")),
        "config": {**vars(args), "out": str(args.out)},
        "sizes": {},
    }
    result["config"]["large_modes"] = large_modes
    workdir = Path(tempfile.mkdtemp(prefix="mmrag-bench-store-"))
    t_all = time.perf_counter()
    try:
        check = parse_size(args.check_size)
        if check:
            result["embedder_check"] = {k: bench_size(k, check, args, workdir) for k in ("minilm", "static")}
            for k, r in result["embedder_check"].items():
                report(f"{check:,} points, {k} (embedder check)", r)
        default_modes = args.modes
        for n in sizes:
            args.modes = large_modes if (args.size and n == sizes[-1]) else default_modes
            r = bench_size(args.data, n, args, workdir)
            result["sizes"][str(n)] = r
            report(f"{n:,} points, {args.data}", r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["total_s"] = round(time.perf_counter() - t_all, 1)
    write_result(result, args.out, plot)
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')} ({result['total_s']} s)")


if __name__ == "__main__":
    main()
