"""MultiHop-RAG data and the official retrieval metrics (the rule is in `mmrag.evals.multihop`'s docstring).

`mmrag.evals.multihop` runs the retrieval configurations and scores them with `query_metrics`;
`bench/rerank_dev.py` reads the same queries and metrics.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmrag.types import MMRAGError

NULL_TYPE = "null_query"
OFFICIAL = ("hits@10", "hits@4", "map@10", "mrr@10")
EVIDENCE = ("recall@4", "recall@10", "complete@10")
"""Multi-evidence metrics: a multi-hop answer needs every gold fact, not any one of them."""
METRICS = OFFICIAL + EVIDENCE
EVIDENCE_LABEL = "MultiHop-RAG-500 (evidence articles)"


def shared_multihop() -> Path:
    """`$MMRAG_SHARED_DATA/multihop`, by default ../shared/data beside the checkout (as in the tests)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("MMRAG_SHARED_DATA", default)) / "multihop"


# -- official metrics --------------------------------------------------------------------------------
def normalise(text: str) -> str:
    """The official normalisation: spaces and newlines removed (nothing else)."""
    return text.replace(" ", "").replace("\n", "")


def query_metrics(retrieved: Sequence[str], facts: Sequence[str]) -> dict[str, float]:
    """Hits@10, Hits@4, MAP@10 and MRR@10 of one ranked list of texts against the gold facts."""
    gold = [normalise(f) for f in facts]
    found: set[str] = set()
    first: int | None = None
    ap_sum = 0.0
    for rank, text in enumerate((normalise(t) for t in retrieved[:10]), start=1):
        matched = [g for g in gold if g in text]
        if not matched:
            continue
        first = first or rank
        new = [g for g in dict.fromkeys(matched) if g not in found]
        found.update(new)
        ap_sum += len(new) / rank
    return {
        "hits@10": float(first is not None),
        "hits@4": float(first is not None and first <= 4),
        "map@10": ap_sum / min(len(gold), 10) if gold else 0.0,
        "mrr@10": 1.0 / first if first else 0.0,
    }


def evidence_metrics(retrieved: Sequence[str], facts: Sequence[str]) -> dict[str, float]:
    """Recall@4 and Recall@10 (share of the distinct gold facts found in the top k, by the official
    substring rule) and Complete@10 (1 when every gold fact is in the top 10)."""
    gold = list(dict.fromkeys(normalise(f) for f in facts))
    texts = [normalise(t) for t in retrieved[:10]]

    def found(k: int) -> int:
        return sum(any(g in t for t in texts[:k]) for g in gold)

    if not gold:
        return {"recall@4": 0.0, "recall@10": 0.0, "complete@10": 0.0}
    return {
        "recall@4": found(4) / len(gold),
        "recall@10": found(10) / len(gold),
        "complete@10": float(found(10) == len(gold)),
    }


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean of each metric over `rows` (each `{"type", "metrics"}`), overall (`all`) and per type."""
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for r in rows:
        groups["all"].append(r["metrics"])
        groups[r["type"]].append(r["metrics"])
    return {
        t: {m: round(sum(x[m] for x in ms) / len(ms), 4) for m in METRICS if m in ms[0]} | {"n": len(ms)}
        for t, ms in sorted(groups.items())
    }


# -- data --------------------------------------------------------------------------------------------
def load_queries(path: str | Path) -> list[dict[str, Any]]:
    """Queries in the official schema; a clear error naming the file when it is not."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MMRAGError(f"{p}: cannot read MultiHop-RAG queries: {e}") from e
    if not isinstance(data, list):
        raise MMRAGError(f"{p}: expected a JSON list of queries (MultiHopRAG.json schema)")
    for i, q in enumerate(data):
        if not isinstance(q, dict) or not isinstance(q.get("query"), str) or "question_type" not in q:
            raise MMRAGError(f"{p}: query {i} lacks `query` or `question_type` (MultiHopRAG.json schema)")
        if not isinstance(q.get("evidence_list", []), list):
            raise MMRAGError(f"{p}: query {i}: `evidence_list` must be a list")
    return data


def resolve_data(split: str, queries: str | None, corpus: str | None) -> tuple[Path, Path, str]:
    """`(queries file, corpus file, label)`; MMRAGError naming what is missing."""
    root = shared_multihop()
    q = Path(queries) if queries else root / f"{split}.json"
    c = Path(corpus) if corpus else root / "articles_facts.jsonl"
    for p, what in ((q, "queries"), (c, "corpus")):
        if not p.is_file():
            raise MMRAGError(
                f"MultiHop-RAG {what} not found at {p}: pass --queries/--corpus "
                "(MultiHopRAG.json, corpus.json) or set MMRAG_SHARED_DATA"
            )
    label = EVIDENCE_LABEL if c.name == "articles_facts.jsonl" else f"MultiHop-RAG ({c.name})"
    return q, c, label
