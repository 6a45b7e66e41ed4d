"""FinanceBench answers by model, side by side in one run: retrieved pages and the gold pages.

Each question of the split is retrieved once (`--config`, a `mmrag eval financebench` configuration;
the first hit of each of the top `--k` pages) and answered by every model in `--models`, from those
pages and from the question's gold evidence pages, the models' order alternating between questions.
The rule (`mmrag.evals.financebench_answers.is_correct`): the normalised gold answer appears in the
answer, or the gold answer's number (with its $, %, sign and thousand/million/billion scale) matches
a number of the answer within 1%. Accuracy is given overall, per question type, and on the questions
whose gold answer is a number.

The index is the suite's (`runs/financebench/index-<key>`, built by this code when absent: pass a
fresh `--runs` to rebuild it from scratch). Settings are chosen on `--split dev`; `--split test`
reports.

    python bench/answer_financebench.py --split test --runs /tmp/fresh-runs
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from answer_models import load_all  # noqa: E402
from common import machine, rss_mb, write_json  # noqa: E402

RESULTS = Path(__file__).parent / "results"
COLUMNS = ("retrieved", "gold")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b")
    ap.add_argument("--config", default="hybrid(2:1)+routing")
    ap.add_argument("--k", type=int, default=3, help="pages given to the model")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--context-chars", type=int, default=6000)
    ap.add_argument("--limit", type=int, default=0, help="first N questions of the split (0: all)")
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from rich.progress import Progress

    from mmrag.answer.ask import answer
    from mmrag.evals.financebench import _select, open_index, variant_of
    from mmrag.evals.financebench_answers import gold_hits, is_correct, reference_number
    from mmrag.evals.financebench_data import (
        CONFIGS,
        EvalConfig,
        first_per_page,
        load_questions,
        ranked_pages,
        resolve_data,
        search_options,
        search_settings,
        select_split,
    )

    options = CONFIGS[args.config]
    cfg = EvalConfig(split=args.split, runs=args.runs, limit=args.limit)
    qpath, pdf_dir = resolve_data(None, None)
    pdfs, questions, _ = _select(select_split(load_questions(qpath), args.split), pdf_dir, cfg)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    t0 = time.perf_counter()
    pipe, _ = open_index(pdfs, cfg, progress=True, variant=variant_of(options))
    t_index = time.perf_counter() - t0
    search = search_options(options)
    with pipe, search_settings(pipe, options):
        base = replace(
            pipe.config.generate, max_new_tokens=args.max_new_tokens, context_chars=args.context_chars
        )
        gens = {m: replace(base, model=m) for m in models}
        loads = load_all(gens)
        rows: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
        with Progress(transient=True) as bar:
            task = bar.add_task("answering", total=len(questions))
            for i, q in enumerate(questions):
                found = pipe.retrieve(q["question"], k=50, **search).hits
                hits = list(first_per_page(found).values())[: args.k]
                gold = str(q.get("answer", ""))
                for m in models if i % 2 == 0 else models[::-1]:
                    row: dict[str, Any] = {
                        "id": q.get("financebench_id"),
                        "type": q.get("question_type") or "unknown",
                        "question": q["question"],
                        "gold_answer": gold,
                        "numeric_gold": reference_number(gold) is not None,
                    }
                    for col, given in (("retrieved", hits), ("gold", gold_hits(q))):
                        t1 = time.perf_counter()
                        text = answer(q["question"], given, gens[m]).text
                        row[col] = {
                            "answer": text,
                            "correct": is_correct(text, gold),
                            "pages": ranked_pages(given),
                            "seconds": round(time.perf_counter() - t1, 2),
                        }
                    rows[m].append(row)
                bar.advance(task)
    per_model = {m: {"columns": {c: scores(rows[m], c) for c in COLUMNS}, **loads[m]} for m in models}
    result = {
        "bench": "answer_financebench",
        "suite": "financebench answers",
        "split": args.split,
        "questions": len(questions),
        "config": args.config,
        "k": args.k,
        "max_new_tokens": args.max_new_tokens,
        "context_chars": args.context_chars,
        "index_seconds": round(t_index, 1),
        "models": per_model,
        "peak_rss_mb": round(rss_mb("VmHWM")),
        "rule": "normalised gold answer in the answer, or a number within 1% of a numeric gold answer "
        "(its $, %, sign dropped, thousand/million/billion applied)",
        "reference": "GPT-4-Turbo with a shared vector store: 19% (FinanceBench paper, all 150 questions)",
        "machine": machine(device="cpu", libs=["transformers"]),
        "samples": rows,
    }
    out = args.out or RESULTS / f"answer_financebench_{args.split}.json"
    write_json(result, out)
    print(
        f"FinanceBench answers, split {args.split}, {len(questions)} questions, "
        f"{args.config} top {args.k} pages"
    )
    for m in models:
        for c in COLUMNS:
            v = per_model[m]["columns"][c]
            print(
                f"  {m:24s} {c:9s} accuracy {v['accuracy']} (numeric {v['numeric_accuracy']}) "
                f"{v['seconds_per_answer']} s/answer  by type {v['accuracy_by_type']}"
            )
    print(f"wrote {out}")


def scores(rows: list[dict[str, Any]], col: str) -> dict[str, Any]:
    """Accuracy overall, per question type and on numeric gold answers; seconds per answer."""
    by_type: dict[str, list[bool]] = defaultdict(list)
    numeric = [r[col]["correct"] for r in rows if r["numeric_gold"]]
    for r in rows:
        by_type[r["type"]].append(r[col]["correct"])
    ok = [r[col]["correct"] for r in rows]
    return {
        "n": len(rows),
        "accuracy": round(sum(ok) / max(1, len(ok)), 4),
        "accuracy_by_type": {t: round(sum(v) / len(v), 4) for t, v in sorted(by_type.items())},
        "numeric_n": len(numeric),
        "numeric_accuracy": round(sum(numeric) / max(1, len(numeric)), 4),
        "seconds_per_answer": round(sum(r[col]["seconds"] for r in rows) / max(1, len(rows)), 2),
    }


if __name__ == "__main__":
    main()
