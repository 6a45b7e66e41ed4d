"""Store backends side by side: ingest rate, query latency and HNSW recall.

EdgeStore (qdrant-edge-py, the embedded default) against ClientStore in qdrant-client's local
mode (`:memory:`, pure Python), on clustered 512-d vectors (a normalised Gaussian mixture; the
queries are held-out draws from the same mixture, as real queries resemble the data).

Per size it measures:
- ingest: points/s of `Store.upsert` (batches of 1024), and for the edge shard also the blocking
  `optimize()` that builds HNSW (reported separately and folded into an "ingest + index" rate);
- query: p50/p95 latency of a single dense prefetch (limit 10) through `Store.query`; for the edge
  shard before optimize (brute force), after it (HNSW) and with `SearchParams(exact=True)`;
- recall@10 of every search against numpy brute force, and an `hnsw_ef` sweep for the edge shard.

qdrant-client local mode searches by brute force in Python: its query count shrinks with size
(`--client-queries`) and sizes above `--client-max-size` skip it. The counts used are in the output.

    python bench/store.py                      # 10k and 100k points, writes bench/results/store.json
    python bench/store.py --sizes 1000000      # edge only (client skipped above 100k)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.store import PointData, Prefetch, Store, StoreSchema, point_id
from mmrag.store.client import ClientStore
from mmrag.store.edge import EdgeStore

CHUNK = 10_000  # data is generated (and regenerated for ground truth) in chunks: 1M points fit
BATCH = 1024


class Mixture:
    """A fixed Gaussian mixture on the unit sphere; chunk `c` is always the same points."""

    def __init__(self, dim: int, clusters: int, spread: float, seed: int):
        self.dim, self.spread, self.seed = dim, spread, seed
        self.centers = np.random.default_rng(seed).normal(size=(clusters, dim)).astype(np.float32)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        labels = rng.integers(0, len(self.centers), size=n)
        x = self.centers[labels] + self.spread * rng.normal(size=(n, self.dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def chunks(self, n: int) -> Iterator[tuple[int, np.ndarray]]:
        for c, start in enumerate(range(0, n, CHUNK)):
            rng = np.random.default_rng([self.seed, 1, c])
            yield start, self.draw(min(CHUNK, n - start), rng)

    def queries(self, n: int) -> np.ndarray:
        return self.draw(n, np.random.default_rng([self.seed, 2]))


def pid(i: int) -> str:
    return point_id("bench", str(i))


def ground_truth(data: Mixture, n: int, queries: np.ndarray, k: int = 10) -> list[set[str]]:
    """Exact top-k ids per query by numpy brute force, chunk by chunk."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start, x in data.chunks(n):
        s = queries @ x.T
        cand_s = np.concatenate([best_s, s], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(x)), s.shape)], axis=1)
        top = np.argpartition(-cand_s, min(k, cand_s.shape[1] - 1), axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, top, axis=1)
        best_i = np.take_along_axis(cand_i, top, axis=1)
    return [{pid(int(i)) for i in row} for row in best_i]


def ingest(store: Store, data: Mixture, n: int) -> float:
    """Seconds spent in `store.upsert` (data generation excluded)."""
    spent = 0.0
    for start, x in data.chunks(n):
        for b in range(0, len(x), BATCH):
            pts = [
                PointData(
                    pid(start + b + j),
                    {"image": v},
                    payload={"modality": "image", "path": f"/data/{(start + b + j) // 10}.jpg"},
                )
                for j, v in enumerate(x[b : b + BATCH])
            ]
            t = time.perf_counter()
            store.upsert(pts)
            spent += time.perf_counter() - t
    return spent


def timed_queries(
    search: Callable[[np.ndarray], list[str]], queries: np.ndarray, truth: list[set[str]]
) -> dict[str, Any]:
    """p50/p95 latency in ms and mean recall@10 of `search` over `queries`."""
    lat, rec = [], []
    for q, t in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        got = search(q)
        lat.append((time.perf_counter() - t0) * 1000)
        rec.append(len(set(got[:10]) & t) / 10)
    return {
        "queries": len(queries),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p95_ms": round(float(np.percentile(lat, 95)), 3),
        "recall@10": round(float(np.mean(rec)), 4),
    }


def store_search(store: Store) -> Callable[[np.ndarray], list[str]]:
    return lambda q: [h.id for h in store.query([Prefetch("image", dense=q)], limit=10)]


def edge_raw_search(store: EdgeStore, **params: Any) -> Callable[[np.ndarray], list[str]]:
    """A search straight on the shard with `SearchParams` (exact, hnsw_ef) the Store API hides."""
    import qdrant_edge as qe

    sp = qe.SearchParams(**params)

    def run(q: np.ndarray) -> list[str]:
        req = qe.QueryRequest(limit=10, query=qe.Query.Nearest(q.tolist(), using="image"), params=sp)
        return [str(h.id) for h in store.shard.query(req)]

    return run


def bench_edge(
    data: Mixture,
    n: int,
    queries: np.ndarray,
    truth: list[set[str]],
    efs: list[int],
    schema: StoreSchema,
    workdir: Path,
) -> dict[str, Any]:
    folder = workdir / f"edge-{n}"
    out: dict[str, Any] = {}
    with EdgeStore(folder, schema) as store:
        upsert_s = ingest(store, data, n)
        t = time.perf_counter()
        store.flush()
        flush_s = time.perf_counter() - t
        out["before_optimize"] = timed_queries(store_search(store), queries, truth)
        t = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - t
        info = store.shard.info()
        out["ingest"] = {
            "upsert_s": round(upsert_s, 2),
            "flush_s": round(flush_s, 2),
            "optimize_s": round(optimize_s, 2),
            "points_per_s": round(n / upsert_s),
            "points_per_s_with_index": round(n / (upsert_s + optimize_s)),
            "indexed_vectors": info.indexed_vectors_count,
            "segments": info.segments_count,
        }
        out["query"] = timed_queries(store_search(store), queries, truth)
        out["exact"] = timed_queries(edge_raw_search(store, exact=True), queries, truth)
        out["hnsw_ef"] = {
            str(ef): timed_queries(edge_raw_search(store, hnsw_ef=ef), queries, truth) for ef in efs
        }
    # allocated blocks, not st_size: the shard preallocates sparse files (64 MB of WAL when empty)
    out["disk_mb"] = {sub: allocated_mb(folder / sub) for sub in ("segments", "wal")}
    shutil.rmtree(folder, ignore_errors=True)
    return out


def allocated_mb(folder: Path) -> float:
    return round(sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file()) / 2**20, 1)


def bench_client(
    data: Mixture, n: int, queries: np.ndarray, truth: list[set[str]], schema: StoreSchema
) -> dict[str, Any]:
    with ClientStore(":memory:", schema) as store:
        upsert_s = ingest(store, data, n)
        return {
            "ingest": {"upsert_s": round(upsert_s, 2), "points_per_s": round(n / upsert_s)},
            "query": timed_queries(store_search(store), queries, truth),
        }


def machine() -> dict[str, Any]:
    cpu = ""
    if Path("/proc/cpuinfo").is_file():
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "",
        )
    return {
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "qdrant-edge-py": version("qdrant-edge-py"),
        "qdrant-client": version("qdrant-client"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def report(size: int, r: dict[str, Any]) -> None:
    e, c = r["edge"], r.get("client")
    rows = [
        ("upsert points/s", e["ingest"]["points_per_s"], c and c["ingest"]["points_per_s"]),
        ("  + HNSW build (s)", e["ingest"]["optimize_s"], None),
        ("  ingest+index points/s", e["ingest"]["points_per_s_with_index"], None),
        ("query p50 ms", e["query"]["p50_ms"], c and c["query"]["p50_ms"]),
        ("query p95 ms", e["query"]["p95_ms"], c and c["query"]["p95_ms"]),
        ("recall@10", e["query"]["recall@10"], c and c["query"]["recall@10"]),
        ("queries", e["query"]["queries"], c and c["query"]["queries"]),
        ("brute-force p50 ms (pre-optimize)", e["before_optimize"]["p50_ms"], None),
        ("exact=True p50 ms", e["exact"]["p50_ms"], None),
    ]
    print(f"\n== {size:,} points, {r['dim']}-d ==")
    print(f"{'':36}{'edge':>12}{'client':>12}{'edge/client':>13}")
    for name, a, b in rows:
        fa = f"{a:,}" if isinstance(a, int) else f"{a}"
        fb = "" if b is None else f"{b:,}"
        fr = "" if b is None or name == "queries" else str(ratio(a, b))
        print(f"{name:36}{fa:>12}{fb:>12}{fr:>13}")
    for ef, m in e["hnsw_ef"].items():
        print(f"{'  hnsw_ef=' + ef + ' recall / p50 ms':36}{m['recall@10']:>12}{m['p50_ms']:>12}")
    disk = e["disk_mb"]
    print(f"{'edge disk MB (segments / wal)':36}{disk['segments']:>12}{disk['wal']:>12}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated point counts")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--client-queries", type=int, default=100, help="client queries above 20k points")
    ap.add_argument("--client-max-size", type=int, default=100_000, help="skip the client above this size")
    ap.add_argument("--ef", default="32,64,128,256", help="hnsw_ef values to sweep on the edge shard")
    ap.add_argument("--clusters", type=int, default=64)
    # centers and noise are both N(0, 1) per dim scaled by 1 and `spread`: two points of one cluster
    # have cosine ~1/(1+spread^2) (0.74 at 0.6), points of two clusters ~0
    ap.add_argument("--spread", type=float, default=0.6, help="noise scale relative to the centers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "store.json")
    args = ap.parse_args()
    # qdrant-client warns once that local mode is meant for < 20k points: that is what is measured
    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    data = Mixture(args.dim, args.clusters, args.spread, args.seed)
    schema = StoreSchema(dense={"image": args.dim})
    efs = [int(x) for x in args.ef.split(",") if x]
    config = {**vars(args), "out": str(args.out)}
    result: dict[str, Any] = {"machine": machine(), "config": config, "sizes": {}}
    workdir = Path(tempfile.mkdtemp(prefix="mmrag-bench-store-"))
    t_all = time.perf_counter()
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            queries = data.queries(args.queries)
            truth = ground_truth(data, size, queries)
            r: dict[str, Any] = {"dim": args.dim}
            r["edge"] = bench_edge(data, size, queries, truth, efs, schema, workdir)
            if size <= args.client_max_size:
                nq = args.queries if size <= 20_000 else min(args.queries, args.client_queries)
                r["client"] = bench_client(data, size, queries[:nq], truth[:nq], schema)
                r["ratios_edge_over_client"] = {
                    "upsert_points_per_s": ratio(
                        r["edge"]["ingest"]["points_per_s"], r["client"]["ingest"]["points_per_s"]
                    ),
                    "query_p50": ratio(r["edge"]["query"]["p50_ms"], r["client"]["query"]["p50_ms"]),
                    "query_p95": ratio(r["edge"]["query"]["p95_ms"], r["client"]["query"]["p95_ms"]),
                }
            else:
                r["client"] = None
            result["sizes"][str(size)] = r
            report(size, r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["total_s"] = round(time.perf_counter() - t_all, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['total_s']} s)")


if __name__ == "__main__":
    main()
