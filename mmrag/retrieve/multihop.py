"""Multi-hop retrieval: split a question into sub-queries, retrieve for each, merge; or iterate.

A multi-hop question ("Did TechCrunch's report on X and The Verge's report on Y agree on Z?")
needs evidence that no single query finds at the top. Two modes:

- `decompose`: sub-queries from the LLM (`prompts/decompose.txt`), or from clause rules
  (`decomposer="rules"`: splits at "while", "whereas", "and the ...", "compared to" ...); each
  sub-query and the question itself are retrieved, and the ranked lists are fused by RRF, so a hit
  found by several sub-queries rises and each sub-query's best hits stay near the top.
- `iterative`: retrieve, show the LLM the top hits, ask for the next query (`prompts/next_query.txt`),
  retrieve again; `hops` rounds, then the same fusion.

The answer is generated from the union (`Pipeline.ask(..., multi_hop=...)`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmrag.store.base import ScoredPoint
from mmrag.types import Hit, MMRAGError

MODES = ("decompose", "iterative")
_SPLIT = re.compile(
    r"(?:,\s*|\s+)(?:while|whereas|but|compared to|as opposed to"
    r"|and(?= (?:the|a|an|in|on|by|from)\b)|and(?= ['\"]))\s+",
    re.I,
)
_MIN_WORDS = 4


@dataclass
class HopResult:
    """Hits merged over sub-queries, with the sub-queries that found them."""

    hits: list[Hit]
    queries: list[str]
    timings: dict[str, float] = field(default_factory=dict)


def rule_queries(question: str, max_queries: int = 4) -> list[str]:
    """Sub-queries from the question's clauses (no model); clauses under 4 words join their neighbour."""
    parts = [p.strip(" ,;?") for p in _SPLIT.split(question.strip()) if p and p.strip(" ,;?")]
    merged: list[str] = []
    for p in parts:
        if merged and len(p.split()) < _MIN_WORDS:
            merged[-1] = f"{merged[-1]} {p}"
        else:
            merged.append(p)
    return [q for q in merged if q != question.strip(" ?")][:max_queries]


def parse_queries(text: str, question: str, max_queries: int) -> list[str]:
    """Lines of an LLM's reply as queries: list markers stripped, empty and repeated lines dropped."""
    out: list[str] = []
    for line in text.splitlines():
        q = re.sub(r"^\s*(?:[-*•]|\d+[.)]|query\s*\d*:)\s*", "", line, flags=re.I).strip().strip('"')
        if len(q.split()) >= 2 and q not in out and q.lower() != question.lower():
            out.append(q)
    return out[:max_queries]


def llm_queries(question: str, generate: Callable[[str], str], max_queries: int = 4) -> list[str]:
    """Sub-queries written by the LLM; falls back to the clause rules when its reply has none."""
    from mmrag.prompts import render_prompt

    reply = generate(render_prompt("decompose", question=question, max_queries=str(max_queries)))
    return parse_queries(reply, question, max_queries) or rule_queries(question, max_queries)


def fuse_hits(lists: Sequence[Sequence[Hit]], limit: int, rrf_k: int) -> list[Hit]:
    """RRF over ranked hit lists (the first occurrence of a point keeps its payload)."""
    from mmrag.retrieve.hybrid import fuse

    by_id: dict[str, Hit] = {}
    ranked: list[list[ScoredPoint]] = []
    for lst in lists:
        ranked.append([ScoredPoint(h.id, h.score, {}) for h in lst])
        for h in lst:
            by_id.setdefault(h.id, h)
    out = []
    for p in fuse(ranked, "rrf", limit, rrf_k):
        h = by_id[p.id]
        out.append(Hit(**{**h.to_dict(), "score": p.score, "payload": h.payload}))
    return out


def multi_hop(
    retrieve_fn: Callable[..., Any],
    question: str,
    k: int,
    mode: str = "decompose",
    decomposer: str = "llm",
    hops: int = 2,
    max_queries: int = 4,
    *,
    generate_fn: Callable[[str, int], str] | None = None,
    rrf_k: int = 60,
    **search: Any,
) -> HopResult:
    """Retrieve for a multi-hop question (see the module docstring).

    Args:
        retrieve_fn: `retrieve_fn(query, k=k, **search)` returns an object with `.hits`
            (`Pipeline.retrieve`).
        question: The question.
        k: Hits in the merged list.
        mode: `decompose` or `iterative`.
        decomposer: `llm` (the configured generator) or `rules` (decompose mode only).
        hops: Rounds in iterative mode.
        max_queries: Most sub-queries in decompose mode.
        generate_fn: `generate_fn(prompt, max_new_tokens)` writes sub-queries (the `llm` decomposer
            and iterative mode need it).
        rrf_k: RRF constant of the fusion of the lists.
        **search: Options for each `retrieve_fn` call (filters, `spaces`, `rerank`, ...).
    """
    if mode not in MODES:
        raise MMRAGError(f"unknown multi-hop mode {mode!r}: choose from {', '.join(MODES)}")
    if decomposer not in ("llm", "rules"):
        raise MMRAGError(f"unknown decomposer {decomposer!r}: choose llm or rules")
    if generate_fn is None and (mode == "iterative" or decomposer == "llm"):
        raise MMRAGError(f"multi-hop {mode} with the {decomposer} decomposer needs a generator")
    t0 = time.perf_counter()
    timings: dict[str, float] = {"plan": 0.0}
    queries = [question]
    lists = [retrieve_fn(question, k=k, **search).hits]
    if mode == "decompose":
        t1 = time.perf_counter()
        if decomposer == "rules":
            subs = rule_queries(question, max_queries)
        else:
            assert generate_fn is not None
            subs = llm_queries(question, lambda p: generate_fn(p, 64), max_queries)
        timings["plan"] = time.perf_counter() - t1
        for q in subs:
            queries.append(q)
            lists.append(retrieve_fn(q, k=k, **search).hits)
    else:
        from mmrag.prompts import render_prompt

        assert generate_fn is not None
        gen = generate_fn
        for _ in range(max(0, hops - 1)):
            seen = fuse_hits(lists, 3, rrf_k)
            context = "\n".join(f"- {(h.text or '')[:300]}" for h in seen)
            t1 = time.perf_counter()
            reply = gen(render_prompt("next_query", question=question, context=context), 32)
            timings["plan"] += time.perf_counter() - t1
            nxt = parse_queries(reply, question, 1)
            if not nxt or nxt[0] in queries:
                break
            queries.append(nxt[0])
            lists.append(retrieve_fn(nxt[0], k=k, **search).hits)
    hits = fuse_hits(lists, k, rrf_k)
    timings["total"] = time.perf_counter() - t0
    return HopResult(hits, queries, timings)
