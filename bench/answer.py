"""Answering at scale: generation speed, static cache + compile, `ask` latency by stage, `ask` memory.

One run measures, side by side:
1. generation speed, 4-bit NF4 against 16-bit: TTFT and decode tokens/s at batch 1 and 8 with 0, 1
   and 4 images (`bench/generate.py`; on CPU the trained offline bridge, EfficientNet-Lite0 +
   projector + SmolLM2-135M; with `--device cuda` random-init LLaVA-1.5-7B shapes);
2. the decode with a static KV cache, with and without torch.compile, against the dynamic cache;
3. `Pipeline.ask` end to end on a small real index (MultiHop-RAG articles, offline profile), the
   median seconds of each stage: retrieve, rerank (LLM yes/no), pack, generate;
4. the memory of `ask`, 4-bit against 16-bit, each in a fresh subprocess: peak RSS
   (VmHWM), RSS after the answer (anonymous and file-backed), the same after `malloc_trim`, and
   the model's own footprint; for SmolLM2-135M and for a random-init LLM of SmolLM2-1.7B's shape.

    python bench/answer.py                  # CPU, ~7 min on 2 idle cores; bench/results/answer.{json,png}
    python bench/answer.py --device cuda    # GPU: LLaVA-1.5-7B shapes, CUDA memory too
    python bench/answer.py --parts memory --memory-models smollm2-1.7b --prequantized --merge

The first run writes the random checkpoints to `--workdir` (3.4 GB for the 1.7B shape, 14 GB for
LLaVA-1.5-7B). `--merge` replaces only the parts run in an existing results file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from answer_memory import ask_memory, memory_child, memory_ratios
from checkpoints import ROOT
from common import write_result
from generate import add_speed_args, machine, run_speed, speed_ratios

DATA = Path(os.environ.get("MMRAG_SHARED_DATA") or ROOT.parent / "shared" / "data") / "multihop"
STAGES = ("retrieve", "rerank", "pack", "generate")


# --- ask latency -----------------------------------------------------------------------------------


def build_index(data: Path, workdir: Path, articles: int) -> tuple[Path, list[str]]:
    """Index the first `articles` MultiHop-RAG articles (one text file each) with the offline profile.

    Returns the index folder and the dev questions whose evidence lies in those articles.
    """
    from mmrag import Pipeline

    rows = [json.loads(ln) for ln in (data / "articles_facts.jsonl").open(encoding="utf-8")][:articles]
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for r in rows:
        text = f"{r['title']}\n{r['source']}, {r['published_at'][:10]}\n\n" + "\n".join(r["facts"])
        (corpus / f"{r['doc_id']}.txt").write_text(text, encoding="utf-8")
    titles = {r["title"] for r in rows}
    dev = json.loads((data / "dev.json").read_text(encoding="utf-8"))
    questions = [q["query"] for q in dev if all(e["title"] in titles for e in q["evidence_list"])]
    index = workdir / "index"
    with Pipeline.from_config(profile="offline", index=index, **{"encoders.ocr": False}) as p:
        p.index([corpus])
    return index, questions


def ask_latency(index: Path, questions: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Median stage seconds of `Pipeline.ask` per generator precision (after one warm-up question)."""
    from mmrag import Pipeline

    out: dict[str, Any] = {"questions": len(questions), "rerank": args.rerank, "k": args.k}
    for quantize in (True, False):
        precision = "nf4" if quantize else "16-bit"
        overrides = {
            "generate.quantize": quantize,
            "generate.device": args.device,
            "generate.max_new_tokens": args.ask_tokens,
            "rerank.candidates": args.candidates,
        }
        with Pipeline.load(index, **overrides) as p:
            p.config.generate.dtype = args.half or "bfloat16"  # GenerateConfig.dtype
            warm = p.ask(questions[0], k=args.k, rerank=args.rerank)
            runs = []
            for q in questions:
                t = time.perf_counter()
                a = p.ask(q, k=args.k, rerank=args.rerank)
                runs.append({**a.timings, "wall": time.perf_counter() - t, "answer_chars": len(a.text)})
        med = {k: round(statistics.median(r[k] for r in runs), 4) for k in (*STAGES, "wall")}
        out[precision] = {
            "model": warm.model,
            "first_load_s": warm.timings["load"],
            "median_s": med,
            "runs": runs,
        }
        print(json.dumps({precision: med}), file=sys.stderr, flush=True)
        if args.rerank != "none" and not any(r["rerank"] for r in runs):
            out["note"] = "rerank reported 0: this Pipeline.ask counts the reranker inside retrieve"
    return out


# --- report ----------------------------------------------------------------------------------------


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    speed = result.get("speed")
    if speed:
        precisions = list(dict.fromkeys(r["precision"] for r in speed["rows"]))
        cells = list(dict.fromkeys((r["batch"], r["images"]) for r in speed["rows"]))
        by = {(r["precision"], r["batch"], r["images"]): r for r in speed["rows"]}
        for ax, key, unit in (
            (axes[0, 0], "ttft_s", "TTFT, s"),
            (axes[0, 1], "decode_tok_s", "decode tokens/s"),
        ):
            width = 0.8 / len(precisions)
            for i, p in enumerate(precisions):
                vals = [by[(p, b, n)][key] or 0 for b, n in cells]
                ax.bar([c + i * width for c in range(len(cells))], vals, width, label=p)
            ax.set_xticks(
                [c + 0.4 - width / 2 for c in range(len(cells))], [f"b{b}, {n} img" for b, n in cells]
            )
            ax.set_ylabel(unit)
            ax.set_title(f"{speed['arch']}: {unit}")
            ax.legend()
    ask = result.get("ask")
    if ask:
        ax = axes[1, 0]
        labels = [p for p in ("nf4", "16-bit") if p in ask]
        bottom = [0.0] * len(labels)
        for stage in STAGES:
            vals = [ask[p]["median_s"][stage] for p in labels]
            ax.bar(labels, vals, bottom=bottom, label=stage)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_ylabel("median seconds")
        ax.set_ylim(top=max(bottom) * 1.25)
        ax.set_title(f"ask by stage ({ask['questions']} questions, rerank={ask['rerank']})")
        ax.legend(ncol=4, loc="upper center")
    memory = result.get("memory")
    if memory:
        ax = axes[1, 1]
        names = [(m, lab) for m, runs in memory.items() for lab in runs]
        x = range(len(names))
        for j, (key, label) in enumerate((("peak_rss_mb", "peak RSS"), ("rss_mb", "RSS after answer"))):
            ax.bar(
                [i + j * 0.27 for i in x],
                [memory[m][lab]["after_answer"][key] for m, lab in names],
                0.27,
                label=label,
            )
        ax.bar(
            [i + 0.54 for i in x], [memory[m][lab]["footprint_mb"] for m, lab in names], 0.27, label="model"
        )
        ax.set_xticks([i + 0.27 for i in x], [f"{m}\n{lab}" for m, lab in names], fontsize=8)
        ax.set_ylabel("MB")
        ax.set_title("memory of ask (own process each)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def report(result: dict[str, Any]) -> None:
    """The ratios, measured side by side in this run."""
    r = result["ratios"]
    if "speed" in r:
        print("\nNF4 / 16-bit (generation):")
        for cell, v in r["speed"]["nf4_over_16bit"].items():
            print(f"  {cell:14} TTFT x{v['ttft']}   decode tokens/s x{v['decode_tok_s']}")
        for p, modes in r["speed"]["all_modes"].items():
            print(
                f"  {p}: decode tokens/s over the dynamic cache: "
                + ", ".join(f"{m} x{v}" for m, v in modes.items())
            )
    if "ask" in result:
        for p in ("nf4", "16-bit"):
            med = result["ask"][p]["median_s"]
            print(f"\nask ({p}), median s: " + ", ".join(f"{k} {med[k]}" for k in (*STAGES, "wall")))
    for name, v in r.get("memory", {}).items():
        print(f"\nmemory {name} over 16-bit (< 0.4 is the target):")
        for k, x in v.items():
            if k != "target_met":
                print(f"  {k:22} {x}  {'met' if v['target_met'][k] else 'not met'}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_speed_args(ap)
    ap.add_argument("--parts", default="speed,ask,memory", help="any of speed, ask, memory")
    ap.add_argument(
        "--data", type=Path, default=DATA, help="MultiHop-RAG folder (articles_facts.jsonl, dev.json)"
    )
    ap.add_argument("--articles", type=int, default=40, help="MultiHop-RAG articles indexed for ask")
    ap.add_argument("--questions", type=int, default=5, help="questions timed per precision")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--rerank", default="llm", help="reranker in the ask runs (none to skip)")
    ap.add_argument("--candidates", type=int, default=10, help="fused candidates given to the reranker")
    ap.add_argument("--ask-tokens", type=int, default=48, help="generate.max_new_tokens in the ask runs")
    ap.add_argument(
        "--memory-models",
        type=lambda s: s.split(","),
        default=None,
        help="smollm2-135m, smollm2-1.7b, llama-7b (random; ~18 GB RAM on CPU), llava-1.5-7b "
        "(random) or a folder; default smollm2-135m,smollm2-1.7b (CPU), smollm2-1.7b,llava-1.5-7b (CUDA)",
    )
    ap.add_argument("--prequantized", action="store_true", help="also ask from a saved NF4 checkpoint")
    ap.add_argument("--merge", action="store_true", help="replace only these parts in an existing --out")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "answer.json")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    args.arch = args.arch or ("llava-1.5-7b" if cuda else "bridge")
    default_models = ["smollm2-1.7b", "llava-1.5-7b"] if cuda else ["smollm2-135m", "smollm2-1.7b"]
    args.memory_models = args.memory_models or default_models
    return args  # fmt: skip


def run_parts(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Run the chosen parts into `result` (replacing what it holds for them)."""
    parts = set(args.parts.split(","))
    ratios = result.setdefault("ratios", {})
    if "speed" in parts:
        result["speed"] = run_speed(args)
        ratios["speed"] = speed_ratios(result["speed"])
    if not parts & {"ask", "memory"}:
        return
    with tempfile.TemporaryDirectory(prefix="mmrag-bench-answer-") as tmp:
        index, questions = build_index(args.data, Path(tmp), args.articles)
        if not questions:
            raise SystemExit(f"no dev question has all its evidence in the first {args.articles} articles")
        if "ask" in parts:
            result["ask"] = ask_latency(index, questions[: args.questions], args)
        if "memory" in parts:
            result["memory"] = ask_memory(index, questions[0], args)
            ratios["memory"] = memory_ratios(result["memory"])


def main() -> None:
    args = parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return
    t0 = time.perf_counter()
    result: dict[str, Any] = {}
    if args.merge and args.out.is_file():
        result = json.loads(args.out.read_text(encoding="utf-8"))
    run = {
        "parts": args.parts,
        "machine": machine(args.device, libs=("transformers", "bitsandbytes")),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    run_parts(args, result)
    run["total_s"] = round(time.perf_counter() - t0, 1)
    result["machine"] = run["machine"]
    result["runs"] = [*result.get("runs", []), run]
    write_result(result, args.out, plot)
    report(result)
    print(f"\nwrote {args.out} ({run['total_s']} s)")


if __name__ == "__main__":
    main()
