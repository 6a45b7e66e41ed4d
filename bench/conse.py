"""ConSE against the ImageNet-tag baseline, in one run: clip8 and the other sample photos.

Both subsets of the shared scikit-image photos (`clip8`: the eight captions of the CLIP demo;
`docstring_extra`: the 13 other photos with their scikit-image docstring captions) are indexed with
the ConSE encoder (`conse-efficientnet-lite0-minilm`), which also stores each image's top ImageNet
labels as tags. Each caption is then searched in the same index: text-to-image in the ConSE space,
the two tag baselines (MiniLM and BM25 over the tags), and the two fusions a profile would run (RRF
of the tag spaces, with and without the ConSE space): whether the offline profile should carry the
ConSE space is the last comparison. Nothing is tuned: T = 10.

Usage: python bench/conse.py [--out bench/results/conse.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_json  # noqa: E402

MODEL = "conse-efficientnet-lite0-minilm"
SUBSETS = ("clip8", "docstring_extra")
FUSED = {
    "fused tags (text+bm25)": {"spaces": ["text", "bm25"], "modality": "image"},
    "fused tags + ConSE (text+bm25+image)": {"spaces": ["text", "bm25", "image"], "modality": "image"},
}


def fused(cfg: Any) -> dict[str, Any]:
    """The fused configurations on the suite's cached index."""
    from mmrag.evals.clip8 import _rows, _scores, load_captions, model_config, open_index, shared_skimage

    folder = shared_skimage()
    captions = load_captions(folder, cfg.subset)
    pipe, _ = open_index([folder / c["image"] for c in captions], model_config(cfg), cfg.runs)
    with pipe:
        rows = _rows(pipe, captions, FUSED)
    return {name: _scores(rows, name) for name in FUSED}


def pooled(subsets: dict[str, Any]) -> dict[str, Any]:
    """Each configuration's top-1 and MRR over both subsets' captions together."""
    out: dict[str, Any] = {}
    names = next(iter(subsets.values()))["configs"]
    for name in names:
        n = sum(s["configs"][name]["n"] for s in subsets.values())
        out[name] = {
            metric: round(
                sum(s["configs"][name][metric] * s["configs"][name]["n"] for s in subsets.values()) / n, 4
            )
            for metric in ("top1", "mrr")
        } | {"n": n}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from mmrag.encoders.conse import TOP_T
    from mmrag.evals.clip8 import EvalConfig, evaluate

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench/results/conse.json"))
    ap.add_argument("--runs", default="runs")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "bench": "conse",
        "model": MODEL,
        "top_t": TOP_T,
        "machine": machine("cpu", ["transformers", "torch"]),
        "subsets": {},
    }
    for subset in SUBSETS:
        cfg = EvalConfig(subset=subset, image_model=MODEL, tag_baseline=True, runs=args.runs)
        m = evaluate(cfg, show_table=True)
        m["configs"] |= fused(cfg)
        result["subsets"][subset] = {k: m[k] for k in ("images", "configs", "chance", "run", "index_seconds")}
    result["both"] = pooled(result["subsets"])
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(result, args.out)
    return result


if __name__ == "__main__":
    main()
