"""Answers by model, side by side in one run: MultiHop-RAG with retrieved and with gold evidence.

Each query is retrieved once (the answer eval's configuration, `hybrid+filters`, top 3) and answered
by every model in `--models`, with the retrieved hits and with the query's gold evidence, the models'
order alternating from query to query so that the machine's load is shared alike. Per model: the
metrics of `mmrag eval answers` (accuracy on answerable queries, null-query refusal next to false
refusal, citation, repetition, invalid labels, seconds per answer), the cold load time, and the memory
the loaded model added to the process (RSS) with the process's peak at the end.

Settings are chosen on `--split dev`; `--split test` reports. The index is built in `--runs` by this
code (pass a fresh folder to rebuild it from scratch).

    python bench/answer_models.py --split dev --sample 20
    python bench/answer_models.py --split test --sample 40 --runs /tmp/fresh-runs
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, rss_mb, write_json  # noqa: E402

RESULTS = Path(__file__).parent / "results"
COLUMNS = ("retrieved", "gold")


def load_all(gens: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Load each generator config once (cold, in this process): seconds and the memory it added."""
    from mmrag.generate.loader import load_generator

    loads = {}
    for name, g in gens.items():
        gc.collect()
        before, t1 = rss_mb(), time.perf_counter()
        load_generator(g)
        loads[name] = {
            "load_seconds": round(time.perf_counter() - t1, 2),
            "rss_added_mb": round(rss_mb() - before),
        }
    return loads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--sample", type=int, default=20, help="queries: the first N/4 of each type (0: all)")
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b")
    ap.add_argument(
        "--prompts",
        default="",
        help="prompt folders to compare (comma-separated; '' is the shipped prompts/): each model "
        "answers with each, shown as MODEL@FOLDER",
    )
    ap.add_argument("--config", default="hybrid+filters")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--context-chars", type=int, default=2500)
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from rich.progress import Progress

    from mmrag.answer.ask import answer
    from mmrag.answer.question import unindexed_of
    from mmrag.evals import multihop
    from mmrag.evals.answers import EvalConfig, answer_metrics, prepare, record
    from mmrag.evals.multihop_answers import gold_hits

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    folders = [f.strip() for f in args.prompts.split(",")] if args.prompts else [""]
    variants = {(f"{m}@{Path(f).name}" if f else m): (m, f or None) for m in names for f in folders}
    models = list(variants)
    cfg = EvalConfig(split=args.split, sample=args.sample, config=args.config, k=args.k, runs=args.runs)
    _, cpath, label, queries, config, mh, opts = prepare(cfg)
    t0 = time.perf_counter()
    with multihop.open_index(cpath, mh) as pipe:
        t_index = time.perf_counter() - t0
        base = replace(
            pipe.config.generate, max_new_tokens=args.max_new_tokens, context_chars=args.context_chars
        )
        gens = {v: replace(base, model=m) for v, (m, _) in variants.items()}
        loads = load_all(gens)
        rows: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
        with Progress(transient=True) as bar:
            task = bar.add_task("answering", total=len(queries))
            for i, q in enumerate(queries):
                found = pipe.retrieve(q["query"], k=cfg.k, modality="text", **opts)
                hits, unindexed = found.hits, unindexed_of(found)
                order = models if i % 2 == 0 else models[::-1]
                for m in order:
                    row = {"i": i, "query": q["query"], "type": q["question_type"], "answer": q["answer"]}
                    prompts = variants[m][1]
                    for col, given, names in (("retrieved", hits, unindexed), ("gold", gold_hits(q), [])):
                        said = answer(q["query"], given, gens[m], prompt_dir=prompts, unindexed=names)
                        row[col] = record(said, q["answer"])
                    rows[m].append(row)
                bar.advance(task)
    per_model = {}
    for m in models:
        cols = answer_metrics(rows[m])
        per_model[m] = {"columns": {c: cols[c] for c in COLUMNS}, **loads[m]}
    result = {
        "bench": "answer_models",
        "suite": "multihop answers",
        "label": label,
        "split": cfg.split,
        "queries": len(queries),
        "config": config,
        "k": cfg.k,
        "max_new_tokens": args.max_new_tokens,
        "context_chars": args.context_chars,
        "index_seconds": round(t_index, 1),
        "models": per_model,
        "prompts": {v: (f or "prompts/") for v, (_, f) in variants.items()},
        "peak_rss_mb": round(rss_mb("VmHWM")),
        "rule": "normalised gold answer is a substring of the normalised generated answer",
        "machine": machine(device="cpu", libs=["transformers"]),
        "samples": rows,
    }
    out = args.out or RESULTS / f"answer_models_{cfg.split}.json"
    write_json(result, out)
    keys = (
        "accuracy",
        "strict_accuracy",
        "null_refusal_rate",
        "false_refusal_rate",
        "citation_rate",
        "repetition_rate",
        "invalid_label_rate",
        "seconds_per_answer",
    )
    print(f"{label}, split {cfg.split}, {len(queries)} queries, {config} top {cfg.k}")
    for m in models:
        for c in COLUMNS:
            v = per_model[m]["columns"][c]
            print(f"  {m:28s} {c:9s} " + "  ".join(f"{k}={v[k]}" for k in keys))
        print(f"  {m:28s} load {loads[m]['load_seconds']} s, +{loads[m]['rss_added_mb']} MB")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
