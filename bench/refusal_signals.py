"""Can a refusal be read off the model, or off the question? MultiHop-RAG null queries vs answerable.

A null query's answer is not in the corpus, and `ask` should say "Insufficient information". Per query
(the answer eval's retrieval, `hybrid+filters` top 3, packed as `ask` packs it), this measures how well
each signal separates null queries from answerable ones:

- `refusal_logprob`: the generator's log-probability that the answer opens with the refusal's first
  token ("Insufficient"), on the `ask` prompt;
- `refusal_margin`: that log-probability minus the likeliest other opening (Yes/No for a yes/no
  question, else the top token);
- `support_no_minus_yes`: log P(No) - log P(Yes) when the model is asked whether the sources hold
  what the question needs (a second prompt);
- `unindexed_source`: whether the question credits a publication no indexed record comes from
  (`Retrieval.filters["unindexed_source"]`, `mmrag.retrieve.filters`), the rule `ask` refuses by.

For each: ROC AUC (null above answerable; 0.5 is chance, below 0.5 the signal points the wrong way),
and the best null-refusal rate at a false-refusal rate of at most 0.15 over thresholds. Thresholds are
chosen here, so run it on `--split dev`.

    python bench/refusal_signals.py --split dev --per-type 25
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_json  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SUPPORT = (
    "Do the numbered sources below contain the information needed to answer the question? "
    "Reply Yes or No.\n\nQuestion: {q}\n\nSources:\n{c}\n\nQuestion: {q}"
)
MAX_FALSE_REFUSAL = 0.15


def pick(queries: list[dict[str, Any]], per_type: int) -> list[dict[str, Any]]:
    """Every null query, and the first `per_type` of each answerable type (0: all)."""
    seen: Counter[str] = Counter()
    out = []
    for q in queries:
        t = q["question_type"]
        if t == "null_query" or not per_type or seen[t] < per_type:
            seen[t] += 1
            out.append(q)
    return out


def separation(null: list[float], answerable: list[float]) -> dict[str, float]:
    """ROC AUC of `null` above `answerable`, and the best null-refusal rate at the allowed false rate."""
    pairs = [(x > y) + 0.5 * (x == y) for x in null for y in answerable]
    best = {"threshold": float("inf"), "null_refusal": 0.0, "false_refusal": 0.0}
    for t in sorted(set(null + answerable)):
        fr = sum(v >= t for v in answerable) / len(answerable)
        nr = sum(v >= t for v in null) / len(null)
        if fr <= MAX_FALSE_REFUSAL and nr > best["null_refusal"]:
            best = {"threshold": round(t, 4), "null_refusal": round(nr, 4), "false_refusal": round(fr, 4)}
    return {"auc": round(sum(pairs) / len(pairs), 4), **best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--per-type", type=int, default=25, help="answerable queries per type (0: all)")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--context-chars", type=int, default=2500)
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import torch
    from rich.progress import Progress

    from mmrag.answer.ask import pack_context
    from mmrag.answer.forms import asks_yes_no
    from mmrag.answer.question import unindexed_of
    from mmrag.evals import multihop
    from mmrag.evals.answers import EvalConfig, prepare
    from mmrag.generate.loader import load_generator
    from mmrag.prompts import render_prompt

    cfg = EvalConfig(split=args.split, sample=0, config="hybrid+filters", k=3, runs=args.runs)
    _, cpath, label, queries, config, mh, opts = prepare(cfg)
    queries = pick(queries, args.per_type)
    rows = []
    t0 = time.perf_counter()
    with multihop.open_index(cpath, mh) as pipe:
        gen = load_generator(replace(pipe.config.generate, model=args.model)).backend
        tok = gen.tokenizer
        ids = {w: tok.encode(w, add_special_tokens=False)[0] for w in ("Insufficient", "Yes", "No")}

        def logprobs(prompt: str) -> torch.Tensor:
            with torch.inference_mode():
                return torch.log_softmax(gen.model(gen.encode(prompt)).logits[0, -1].float(), -1)

        with Progress(transient=True) as bar:
            task = bar.add_task("scoring", total=len(queries))
            for q in queries:
                found = pipe.retrieve(q["query"], k=cfg.k, modality="text", **opts)
                context, _ = pack_context(found.hits, args.context_chars)
                ask = logprobs(render_prompt("ask", question=q["query"], context=context or "(no sources)"))
                support = logprobs(SUPPORT.format(q=q["query"], c=context))
                refusal = float(ask[ids["Insufficient"]])
                other = max(ask[ids["Yes"]], ask[ids["No"]]) if asks_yes_no(q["query"]) else ask.max()
                rows.append(
                    {
                        "type": q["question_type"],
                        "refusal_logprob": round(refusal, 4),
                        "refusal_margin": round(refusal - float(other), 4),
                        "support_no_minus_yes": round(float(support[ids["No"]] - support[ids["Yes"]]), 4),
                        "unindexed_source": float(bool(unindexed_of(found))),
                    }
                )
                bar.advance(task)
    null = [r for r in rows if r["type"] == "null_query"]
    answerable = [r for r in rows if r["type"] != "null_query"]
    signals = ("refusal_logprob", "refusal_margin", "support_no_minus_yes", "unindexed_source")
    result = {
        "bench": "refusal_signals",
        "label": label,
        "split": args.split,
        "model": args.model,
        "null_queries": len(null),
        "answerable": len(answerable),
        "max_false_refusal": MAX_FALSE_REFUSAL,
        "signals": {s: separation([r[s] for r in null], [r[s] for r in answerable]) for s in signals},
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine(device="cpu", libs=["transformers"]),
        "samples": rows,
    }
    out = args.out or RESULTS / f"refusal_signals_{args.split}.json"
    write_json(result, out)
    print(f"{label}, split {args.split}: {len(null)} null, {len(answerable)} answerable, {args.model}")
    for s, v in result["signals"].items():
        rates = f"null refusal {v['null_refusal']:.3f} at false {v['false_refusal']:.3f}"
        print(f"  {s:22s} AUC {v['auc']:.3f}  {rates}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
