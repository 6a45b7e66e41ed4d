"""Rerankers on MultiHop-RAG dev: hybrid top-N reordered by each method, against hybrid alone.

Three steps, each cached under `runs/rerank_dev/` so prompt variants and thresholds are cheap to
compare (dev only; the test split is never touched here):

    python bench/rerank_dev.py candidates --limit 60 --candidates 30   # hybrid top-30 per query
    python bench/rerank_dev.py score --method bi-encoder
    python bench/rerank_dev.py score --method llm --prompt-dir bench/rerank_prompts/B --name llm-B
    python bench/rerank_dev.py report --out bench/results/rerank_dev.json

`report` prints Hits@4 / MRR@10 (official MultiHop-RAG rules) of each scored run and hybrid, the
scoring time per candidate, and tunes the adaptive-k threshold of each run on dev: the threshold
that maximises the mean F1 between the kept hits and the candidates holding a gold fact.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "runs" / "rerank_dev"
THRESHOLDS = [round(0.01 * i, 2) for i in range(1, 100)]


def candidates(args: argparse.Namespace) -> None:
    """Hybrid candidates (text, fused score) and gold facts of the first `--limit` dev queries."""
    from mmrag.evals.multihop import EvalConfig, open_index
    from mmrag.evals.multihop_data import NULL_TYPE, load_queries, resolve_data

    cfg = EvalConfig(split="dev", configs=["hybrid"])
    qpath, cpath, _ = resolve_data("dev", None, None)
    queries = [q for q in load_queries(qpath) if q["question_type"] != NULL_TYPE and q.get("evidence_list")]
    rows = []
    if args.index:  # a copy of the cached index, when another process holds the original
        from mmrag.pipeline import Pipeline

        opened = Pipeline.load(args.index)
    else:
        opened = open_index(cpath, cfg)
    with opened as pipe:
        for q in queries[: args.limit]:
            hits = pipe.retrieve(q["query"], k=args.candidates, modality="text").hits
            rows.append(
                {
                    "query": q["query"],
                    "type": q["question_type"],
                    "facts": [e["fact"] for e in q["evidence_list"] if e.get("fact")],
                    "hits": [{"id": h.id, "score": h.score, "text": h.text or ""} for h in hits],
                }
            )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "candidates.json").write_text(json.dumps(rows), encoding="utf-8")
    print(f"{len(rows)} queries, {args.candidates} candidates each -> {OUT / 'candidates.json'}")


def score(args: argparse.Namespace) -> None:
    """Score every candidate with one reranker; write its scores and timing."""
    import torch

    from mmrag.config import GenerateConfig, MMRAGConfig, RerankConfig
    from mmrag.encoders.embedders import Embedders
    from mmrag.rerank import make_reranker
    from mmrag.types import Hit

    torch.set_num_threads(args.threads)
    rows = json.loads((OUT / "candidates.json").read_text(encoding="utf-8"))[: args.limit or None]
    mcfg = MMRAGConfig.from_profile("offline")
    mcfg.encoders.image = None
    if args.method == "upr":  # exploratory, not a library method: see `QueryLikelihood`
        reranker: Any = QueryLikelihood(args.model or "smollm2-135m", args.batch_size)
    else:
        rcfg = RerankConfig(method=args.method, model=args.model, batch_size=args.batch_size)
        reranker = make_reranker(
            rcfg,
            GenerateConfig(model="smollm2-135m", device="cpu"),
            Embedders(mcfg.encoders),
            args.prompt_dir,
        )
    assert reranker is not None
    reranker.score("warm up", [Hit("w", 0.0, "text", "w", text="warm up")])
    name = args.name or args.method
    path = OUT / f"scores-{name}.json"
    out: list[list[float]] = []
    seconds, cpu, n = 0.0, 0.0, 0
    if args.resume and path.is_file():  # go on from the queries a previous run scored
        prev = json.loads(path.read_text(encoding="utf-8"))
        out = prev["scores"]
        n = sum(len(r["hits"]) for r in rows[: len(out)])
        seconds = prev["ms_per_candidate"] * n / 1000
    done = n
    for i, r in enumerate(rows):
        if i < len(out):
            continue
        hits = [Hit(h["id"], h["score"], "text", "dev", text=h["text"]) for h in r["hits"]]
        t0, c0 = time.perf_counter(), time.process_time()
        out.append(reranker.score(r["query"], hits))
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        n += len(hits)
        print(f"{i + 1}/{len(rows)} {1000 * seconds / n:.0f} ms/candidate", file=sys.stderr, flush=True)
    data = {
        "name": name,
        "reranker": reranker.name,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "ms_per_candidate": 1000 * seconds / max(n, 1),
        "cpu_ms_per_candidate": 1000 * cpu / max(n - done, 1),  # this run's queries only
        "scores": out,
    }
    path.write_text(json.dumps(data), encoding="utf-8")


class QueryLikelihood:
    """UPR-style scoring (Sachan et al. 2022): mean log p(question | passage) under the LLM.

    Not a probability (so no adaptive k); here only to see whether a small LM ranks better by
    likelihood than by answering yes/no.
    """

    def __init__(self, model_id: str, batch_size: int) -> None:
        from mmrag.rerank.llm import load_llm_reranker

        llm = load_llm_reranker(model_id, device="cpu", quantize=False)
        self.model, self.tok = llm.scorer.model, llm.scorer.tokenizer  # type: ignore[attr-defined]
        self.truncate, self.batch_size, self.name = llm.truncate, batch_size, f"upr:{model_id}"

    def score(self, query: str, hits: list[Any]) -> list[float]:
        import torch

        from mmrag.rerank.base import passage

        q_ids = self.tok(" " + query, add_special_tokens=False)["input_ids"]
        out = []
        for i in range(0, len(hits), self.batch_size):
            rows = []
            for h in hits[i : i + self.batch_size]:
                user = f"Passage: {self.truncate(passage(h))}\n\nWrite a question that this passage answers."
                msgs = [{"role": "user", "content": user}]
                text = self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
                rows.append(self.tok(text, add_special_tokens=False)["input_ids"])
            width = max(len(r) for r in rows) + len(q_ids)
            ids = torch.full((len(rows), width), int(self.tok.pad_token_id or 0))
            mask = torch.zeros_like(ids)
            for j, r in enumerate(rows):  # right padding: the question sits right after each prompt
                ids[j, : len(r) + len(q_ids)] = torch.tensor(r + q_ids)
                mask[j, : len(r) + len(q_ids)] = 1
            with torch.inference_mode():
                logp = self.model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
            for j, r in enumerate(rows):
                pos = torch.arange(len(r) - 1, len(r) - 1 + len(q_ids))
                out.append(float(logp[j, pos, torch.tensor(q_ids)].mean()))
        return out


def _metrics(rows: list[dict[str, Any]], orders: list[list[int]]) -> dict[str, float]:
    from mmrag.evals.multihop_data import query_metrics

    ms = [
        query_metrics([r["hits"][i]["text"] for i in o], r["facts"])
        for r, o in zip(rows, orders, strict=True)
    ]
    return {m: round(sum(x[m] for x in ms) / len(ms), 4) for m in ("hits@4", "mrr@10", "hits@10", "map@10")}


def _relevant(row: dict[str, Any]) -> list[bool]:
    from mmrag.evals.multihop_data import normalise

    facts = [normalise(f) for f in row["facts"]]
    return [any(f in normalise(h["text"]) for f in facts) for h in row["hits"]]


def _adaptive(
    rows: list[dict[str, Any]], scores: list[list[float]], args: argparse.Namespace
) -> dict[str, Any]:
    """Mean F1 (kept hits vs candidates with a gold fact) per threshold; the best one and its k's."""
    from mmrag.rerank import adaptive_k

    rel = [_relevant(r) for r in rows]
    orders = [sorted(range(len(s)), key=lambda i: -s[i]) for s in scores]

    def run(th: float, gaps: bool = True) -> tuple[float, list[int], float]:
        f1s, ks, recalls = [], [], []
        for s, o, rl in zip(scores, orders, rel, strict=True):
            ranked = [s[i] for i in o]
            k = adaptive_k(ranked, th, args.min_k, args.max_k, min_gap=0.1 if gaps else 2.0)
            kept = sum(rl[i] for i in o[:k])
            total = sum(rl)
            p, rc = kept / max(k, 1), kept / max(total, 1)
            f1s.append(2 * p * rc / (p + rc) if p + rc else 0.0)
            ks.append(k)
            recalls.append(rc)
        return sum(f1s) / len(f1s), ks, sum(recalls) / len(recalls)

    table = {th: run(th) for th in THRESHOLDS}
    best = max(table, key=lambda th: table[th][0])
    f1, ks, recall = table[best]
    fixed = {k: run_fixed(rel, orders, k) for k in (1, 2, 3, 4, 6, 10)}
    no_gap = {th: run(th, gaps=False)[0] for th in THRESHOLDS}
    best_no_gap = max(no_gap, key=no_gap.__getitem__)
    return {
        "threshold": best,
        "f1": round(f1, 4),
        "recall": round(recall, 4),
        "mean_k": round(sum(ks) / len(ks), 2),
        "k_counts": dict(sorted(Counter(ks).items())),
        "fixed_k_f1": fixed,
        "without_gap_rule": {"threshold": best_no_gap, "f1": round(no_gap[best_no_gap], 4)},
        "relevant_per_query": round(sum(map(sum, rel)) / len(rel), 2),
    }


def run_fixed(rel: list[list[bool]], orders: list[list[int]], k: int) -> float:
    f1s = []
    for rl, o in zip(rel, orders, strict=True):
        kept, total = sum(rl[i] for i in o[:k]), sum(rl)
        p, rc = kept / k, kept / max(total, 1)
        f1s.append(2 * p * rc / (p + rc) if p + rc else 0.0)
    return round(sum(f1s) / len(f1s), 4)


def _auc(rows: list[dict[str, Any]], scores: list[list[float]]) -> float:
    """Mean per-query AUC: how often a candidate holding a gold fact outscores one that does not."""
    aucs = []
    for r, s in zip(rows, scores, strict=True):
        rel = _relevant(r)
        pos = [x for x, y in zip(s, rel, strict=True) if y]
        neg = [x for x, y in zip(s, rel, strict=True) if not y]
        if pos and neg:
            wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
            aucs.append(wins / (len(pos) * len(neg)))
    return round(sum(aucs) / max(len(aucs), 1), 4)


def report(args: argparse.Namespace) -> None:
    rows = json.loads((OUT / "candidates.json").read_text(encoding="utf-8"))
    results: dict[str, Any] = {"queries": len(rows), "candidates": max(len(r["hits"]) for r in rows)}
    hybrid = [list(range(len(r["hits"]))) for r in rows]
    fused = [[-float(i) for i in range(len(r["hits"]))] for r in rows]  # rank order as a score
    results["hybrid"] = {**_metrics(rows, hybrid), "auc": _auc(rows, fused)}
    print(
        f"{'run':<28} {'hits@4':>7} {'mrr@10':>7} {'auc':>7} {'ms/cand':>8}  adaptive (threshold, mean k, F1)"
    )
    h = results["hybrid"]
    h["fixed_k_f1"] = {k: run_fixed([_relevant(r) for r in rows], hybrid, k) for k in (1, 2, 3, 4, 6, 10)}
    print(f"{'hybrid':<28} {h['hits@4']:7.3f} {h['mrr@10']:7.3f} {h['auc']:7.3f}")
    for path in sorted(OUT.glob("scores-*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        scores = data["scores"]
        sub = rows[: len(scores)]
        orders = [sorted(range(len(s)), key=lambda i: -s[i]) for s in scores]
        m = _metrics(sub, orders)
        calibrated = all(0.0 <= x <= 1.0 for sc in scores for x in sc)
        ad = _adaptive(sub, scores, args) if calibrated else {"threshold": "-", "mean_k": "-", "f1": "-"}
        base = {**_metrics(sub, hybrid[: len(scores)]), "auc": _auc(sub, fused[: len(scores)])}
        m["auc"] = _auc(sub, scores)
        results[data["name"]] = {
            **m,
            "hybrid_same_queries": base,
            "queries": len(scores),
            "ms_per_candidate": round(data["ms_per_candidate"], 1),
            "cpu_ms_per_candidate": round(data.get("cpu_ms_per_candidate", float("nan")), 1),
            "threads": data["threads"],
            "reranker": data["reranker"],
            "adaptive": ad,
        }
        print(
            f"{data['name']:<28} {m['hits@4']:7.3f} {m['mrr@10']:7.3f} {m['auc']:7.3f} "
            f"{data['ms_per_candidate']:8.0f}  "
            f"{ad['threshold']}, {ad['mean_k']}, {ad['f1']} "
            f"(hybrid on same: {base['hits@4']}, {base['mrr@10']}, {base['auc']})"
        )
    if args.out:
        from common import write_json  # bench/ is on the path: this script's folder

        write_json(results, Path(args.out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("candidates")
    c.add_argument("--limit", type=int, default=60)
    c.add_argument("--candidates", type=int, default=30)
    c.add_argument("--index", default=None, help="open this index folder instead of the eval's cache")
    s = sub.add_parser("score")
    s.add_argument("--method", default="llm")
    s.add_argument("--model", default=None)
    s.add_argument("--name", default=None)
    s.add_argument("--prompt-dir", default=None)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--limit", type=int, default=0)
    s.add_argument("--resume", action="store_true", help="keep the queries an earlier run scored")
    r = sub.add_parser("report")
    r.add_argument("--min-k", type=int, default=1)
    r.add_argument("--max-k", type=int, default=10)
    r.add_argument("--out", default=None)
    args = p.parse_args()
    {"candidates": candidates, "score": score, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
