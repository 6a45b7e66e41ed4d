"""Printing and plotting for `bench/store.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def report(title: str, r: dict[str, Any]) -> None:
    """One size: ingest, the ef sweep (float and int8), exact search and the ratios."""
    modes = [m for m in ("float", "int8", "int8-disk") if m in r]
    f = r[modes[0]]
    nq = r["queries"]
    print(
        f"\n== {title}, {r['dim']}-d; ef tuned on {nq['dev']} dev questions, "
        f"reported on {nq['test']} others =="
    )
    print(f"{'':34}" + "".join(f"{m:>14}" for m in modes))
    for name, key in (("upsert points/s", "points_per_s"), ("optimize s (HNSW, int8)", "optimize_s")):
        print(f"{name:34}" + "".join(f"{r[m]['ingest'][key]:>14,}" for m in modes))
    for ef in f["hnsw_ef"]:
        cells = [f"{r[m]['hnsw_ef'][ef]['recall@10']:.3f} {r[m]['hnsw_ef'][ef]['p95_ms']:.2f}" for m in modes]
        print(f"{'  dev ef=' + ef + ' recall@10 / p95 ms':34}" + "".join(f"{c:>14}" for c in cells))
    e = r["exact"]
    print(f"{'exact search recall / p50 / p95':34}{e['recall@10']:>8} {e['p50_ms']:.2f} {e['p95_ms']:.2f} ms")
    for mode in modes:
        r_ = r[mode]
        t = r_["tuned"]
        print(
            f"tuned {mode} (ef={r_['tuned_ef']}, Store.query): recall {t['recall@10']}, "
            f"p50 {t['p50_ms']} ms, p95 {t['p95_ms']} ms; RAM {r_['memory_mb']['after_queries_mb']} MB, "
            f"disk {r_['disk_mb']['segments']} MB ({r_['per_million_points']['ram_gb']} / "
            f"{r_['per_million_points']['disk_gb']} GB per million points)"
        )
    c = r.get("client_local")
    if c:
        b = r["int8"]["tuned"] if "int8" in r else r[modes[0]]["tuned"]
        ratio_in = r[modes[0]]["ingest"]["points_per_s"] / c["points_per_s"]
        ratio_q = c["query"]["p50_ms"] / b["p50_ms"]
        print(
            f"qdrant-client local mode: {c['points_per_s']:,} upserts/s ({ratio_in:.1f}x fewer than edge), "
            f"query p50 {c['query']['p50_ms']} ms ({ratio_q:.0f}x edge's tuned int8)"
        )
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in r["ratios"].items()))
    t = r["target"]
    print(
        f"target p95 < {t['p95_ms_max']} ms with recall@10 >= {t['recall_min']}: "
        + ("MET" if t["met"] else "NOT MET")
    )


def plot(result: dict[str, Any], path: Path) -> None:
    """Recall@10 against p95 latency, one curve per size and mode, exact search as a cross."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    runs = [(f"{int(n):,} {r['data']}", r) for n, r in result["sizes"].items()]
    for k, r in (result.get("embedder_check") or {}).items():
        runs.append((f"{r['points']:,} {k} (check)", r))
    for label, r in runs:
        for mode, style in (("float", "--"), ("int8", "-"), ("int8-disk", ":")):
            if mode not in r:
                continue
            pts = r[mode]["hnsw_ef"].values()
            ax.plot(
                [p["p95_ms"] for p in pts],
                [p["recall@10"] for p in pts],
                style,
                marker="o",
                ms=3,
                label=f"{label} {mode}",
            )
        e = r["exact"]
        ax.plot([e["p95_ms"]], [e["recall@10"]], "x", ms=8, label=f"{label} exact")
    ax.axhline(0.95, color="grey", lw=0.5)
    ax.axvline(20, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("query p95 (ms, log)")
    ax.set_ylabel("recall@10 vs exact")
    ax.set_title(
        f"Embedded Qdrant (qdrant-edge-py), HNSW ef sweep, {result['machine']['cpu_count']} CPU cores"
    )
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
