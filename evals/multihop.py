"""MultiHop-RAG: retrieval quality of BM25, dense and hybrid search, side by side, with the official metrics.

Queries are in the official `MultiHopRAG.json` schema (`query, answer, question_type,
evidence_list[{..., fact}]`): the shared 500-query sample (`dev.json`/`test.json`) or the full file
given with `--queries`. The corpus is `corpus.json` (609 articles) when given, else the evidence
articles `articles_facts.jsonl`; numbers over the latter are labelled "MultiHop-RAG-500 (evidence
articles)" because a corpus of evidence articles only is easier than the paper's.

Official retrieval rule (MultiHop-RAG `retrieval_evaluate.py`): null queries are skipped; spaces and
newlines are removed from gold facts and retrieved texts; a retrieved text is a hit when a gold fact
is a substring of it. Hits@k: a hit in the top k. MRR@10: 1/rank of the first hit. MAP@10: at each
hit rank r <= 10, (gold facts found there for the first time) / r, summed, over min(#facts, 10).

Output: `runs/multihop/<timestamp>/` (`config.json`, `samples.jsonl`, `metrics.json`, `metrics.md`)
and `bench/results/multihop_<split>.json` when `bench_file` is given.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.evals import write_json, write_run
from mmrag.evals.multihop_data import (
    METRICS,
    NULL_TYPE,
    aggregate,
    evidence_metrics,
    load_queries,
    query_metrics,
    resolve_data,
)
from mmrag.evals.multihop_tables import markdown, print_table
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.pipeline import Pipeline

CONFIGS = ("bm25", "dense", "hybrid")
# Every retrieval configuration of `--sweep retrieval`: name -> `Pipeline.retrieve` options (and
# `multi_hop` for the decomposition run). `{rerank}` is the EvalConfig's reranker method.
SWEEP: dict[str, dict[str, Any]] = {
    "bm25": {"spaces": ["bm25"]},
    "dense": {"spaces": ["text"]},
    "hybrid": {},
    "dense+hubness": {"spaces": ["text"], "hubness": True},
    "hybrid+hubness": {"hubness": True},
    "hybrid+rerank": {"rerank": "{rerank}"},
    "hybrid+rerank+adaptive-k": {"rerank": "{rerank}", "adaptive_k": True},
    "hybrid+multi-hop": {"multi_hop": True},
    # question-aware routing (sources and days the question names, one search per named source)
    "hybrid+routing": {"route": "filter"},
    "hybrid+routing(boost)": {"route": "boost"},
    "hybrid+routing+contextual": {"route": "filter", "contextual": True},
    "hybrid+routing+contextual+multi-hop": {"route": "filter", "contextual": True, "multi_hop": True},
    "hybrid+routing(boost)+contextual": {"route": "boost", "contextual": True},
    "hybrid+routing(boost)+contextual+multi-hop": {"route": "boost", "contextual": True, "multi_hop": True},
    "hybrid+routing+multi-hop": {"route": "filter", "multi_hop": True},
    "hybrid+routing+multi-hop+rerank": {"route": "filter", "multi_hop": True, "rerank": "{rerank}"},
    # issue 25: one setting for both suites, chosen by the worst question type (`dense_weight`: the
    # dense list's weight in the fusion, BM25's being 1)
    "bm25+routing": {"spaces": ["bm25"], "route": "filter"},
    "dense+routing": {"spaces": ["text"], "route": "filter"},
    "hybrid(3:1)+routing": {"dense_weight": 3.0, "route": "filter"},
    "hybrid(2:1)+routing": {"dense_weight": 2.0, "route": "filter"},
    "hybrid(1:2)+routing": {"dense_weight": 0.5, "route": "filter"},
    "hybrid+routing+rerank": {"route": "filter", "rerank": "{rerank}"},
}
# `hybrid+filters` was the source/date reader that routing replaced; the name stays for old commands.
ALIASES = {"hybrid+filters": "hybrid+routing"}
INDEX_OPTIONS = ("contextual",)
"""Configuration keys that choose the index (an ingest setting), not a search option."""
SEARCH_SETTINGS = ("dense_weight",)
"""Configuration keys that set `search` settings for the configuration's run."""
# Bumped when what an index holds changes (2: `published_date` payload for query filters).
INDEX_FORMAT = "2"


# -- retrieval ---------------------------------------------------------------------------------------
@dataclass
class EvalConfig:
    """One MultiHop-RAG retrieval run."""

    split: str = "dev"
    queries: str | None = None
    """Queries file (official schema); default `<shared>/multihop/<split>.json`."""
    corpus: str | None = None
    """`corpus.json` or `articles_facts.jsonl`; default the shared evidence articles."""
    limit: int = 0
    """First N queries only (0: all)."""
    profile: str = "offline"
    runs: str = "runs"
    k: int = 10
    prefetch: int = 50
    configs: list[str] = field(default_factory=lambda: list(CONFIGS))
    rerank: str = "bi-encoder"
    """Reranker of the `+rerank` configurations (SmolLM2's yes/no `llm` reranker is near random and
    ~1 s a candidate here: see bench/rerank_dev.py)."""
    rerank_threshold: float = 0.72
    """Adaptive k's threshold (tuned on dev for the bi-encoder)."""
    rerank_model: str | None = None
    """Its model (None: the method's default, SmolLM2-135M for `llm`)."""
    rerank_candidates: int = 20
    decomposer: str = "rules"
    """Sub-queries of `+multi-hop`: `rules` (clauses) or `llm`."""
    hubness_bank: int = 1024
    rrf_k: int = 2
    answers: bool = False
    """Also generate answers (from the best retrieval and from the gold evidence) and score them."""
    answer_sample: int = 0
    """Answer only the first N/4 queries of each question type (0: all); generation is slow on CPU."""
    answer_config: str = "hybrid+filters"
    """Retrieval configuration whose hits the answers are generated from (the best on dev)."""
    report: bool = False
    """Also write `report.html` (tables, the sweep plot, a few queries with their hits)."""


def open_index(corpus: Path, cfg: EvalConfig, with_context: bool = False) -> Pipeline:
    """A text-only pipeline over `corpus`, cached in `runs/multihop/index-<hash>` (content + models);
    `with_context`: chunks embedded with their article's title, source and date."""
    from mmrag.config import MMRAGConfig
    from mmrag.evals._index import open_cached

    mcfg = MMRAGConfig.load(profile=cfg.profile, env={})
    mcfg.encoders.image = None  # text corpus: no image tower to load
    mcfg.encoders.ocr = False
    mcfg.ingest.contextual = with_context
    mcfg.search.prefetch = cfg.prefetch
    mcfg.search.rrf_k = cfg.rrf_k
    mcfg.rerank.model = cfg.rerank_model
    mcfg.rerank.candidates = cfg.rerank_candidates
    mcfg.rerank.threshold = cfg.rerank_threshold
    mcfg.ingest.hubness_bank = cfg.hubness_bank if any("hubness" in c for c in cfg.configs) else 0
    pipe, report = open_cached("multihop", [corpus], mcfg, cfg.runs, extra=INDEX_FORMAT)
    if not report.files_indexed and not report.files_skipped:
        pipe.close()
        raise MMRAGError(f"{corpus}: nothing to index (no text records)")
    return pipe


def options(config: str, cfg: EvalConfig) -> dict[str, Any]:
    """`Pipeline.retrieve` options of a configuration name (index settings left out)."""
    config = ALIASES.get(config, config)
    if config not in SWEEP:
        raise MMRAGError(f"unknown retrieval configuration {config!r}: choose from {', '.join(SWEEP)}")
    return {
        k: (cfg.rerank if v == "{rerank}" else v) for k, v in SWEEP[config].items() if k not in INDEX_OPTIONS
    }


def contextual(config: str) -> bool:
    """Whether a configuration reads the index built with contextual chunks."""
    return bool(SWEEP[ALIASES.get(config, config)].get("contextual"))


def retrieve(pipe: Pipeline, text: str, config: str, cfg: EvalConfig) -> tuple[list[str], dict[str, Any]]:
    """Ranked chunk texts (payload `text`) for one query under one configuration, and what was chosen."""
    opts = options(config, cfg)
    settings = {k: opts.pop(k) for k in SEARCH_SETTINGS if k in opts}
    base = pipe.config.search
    pipe.config.search = replace(base, **settings)
    try:
        return _retrieve(pipe, text, opts, cfg)
    finally:
        pipe.config.search = base


def _retrieve(
    pipe: Pipeline, text: str, opts: dict[str, Any], cfg: EvalConfig
) -> tuple[list[str], dict[str, Any]]:
    info: dict[str, Any]
    if opts.pop("multi_hop", False):
        rerank = opts.pop("rerank", None)
        res = pipe.multi_hop(text, cfg.k, decomposer=cfg.decomposer, modality="text", **opts)
        hits, info = res.hits, {"queries": res.queries}
        if rerank:  # rerank the union once, not each sub-query's list
            from mmrag.rerank import make_reranker
            from mmrag.rerank import rerank as run_rerank

            union = pipe.multi_hop(
                text, cfg.rerank_candidates, decomposer=cfg.decomposer, modality="text", **opts
            ).hits
            rcfg = replace(pipe.config.rerank, method=rerank)
            reranker = make_reranker(rcfg, pipe.config.generate, pipe.embedders)
            assert reranker is not None
            hits = run_rerank(reranker, text, union, rcfg, cfg.k).hits[: cfg.k]
    else:
        r = pipe.retrieve(text, k=cfg.k, modality="text", **opts)
        hits, info = r.hits, {"k": r.k, "filters": r.filters} if (r.filters or r.rerank) else {}
    return [str(h.text or "") for h in hits], info


# -- the run -----------------------------------------------------------------------------------------
def _run_configs(
    pipe: Pipeline,
    queries: list[dict[str, Any]],
    cfg: EvalConfig,
    seconds: dict[str, float],
    configs: list[str],
    rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Run `configs` on every query, adding their metrics to `rows` (created on the first call)."""
    if not rows:
        rows += [
            {"i": i, "query": q["query"], "type": q["question_type"], "facts": len(_facts(q))}
            for i, q in enumerate(queries)
        ]
    for q, row in zip(queries, rows, strict=True):
        facts = _facts(q)
        for c in configs:
            t0 = time.perf_counter()
            texts, info = retrieve(pipe, q["query"], c, cfg)
            seconds[c] = seconds.get(c, 0.0) + time.perf_counter() - t0
            row[c] = query_metrics(texts, facts) | evidence_metrics(texts, facts)
            if info:
                row[f"{c}:info"] = info
    return rows


def _facts(q: dict[str, Any]) -> list[str]:
    return [e.get("fact", "") for e in q.get("evidence_list", []) if e.get("fact")]


def _answers(pipe: Pipeline, queries: list[dict[str, Any]], cfg: EvalConfig) -> dict[str, Any]:
    """Answer accuracy of every query (null ones too), from retrieval and from the gold evidence."""
    from mmrag.evals.multihop_answers import accuracy, answer_queries

    gen = pipe.config.generate
    gen.max_new_tokens = 48
    gen.context_chars = 2500  # the top 3 hits: SmolLM2 on 2 CPU cores reads ~300 tokens/s
    opts = options(cfg.answer_config, cfg)
    opts.pop("multi_hop", None)
    if cfg.answer_sample:
        per_type: dict[str, int] = defaultdict(int)
        picked = []
        for q in queries:
            if per_type[q["question_type"]] < max(1, cfg.answer_sample // 4):
                per_type[q["question_type"]] += 1
                picked.append(q)
        queries = picked
    t0 = time.perf_counter()
    rows = answer_queries(queries, lambda q: pipe.retrieve(q, k=3, modality="text", **opts), gen)
    return {
        "model": gen.model,
        "config": cfg.answer_config,
        "k": 3,
        "queries": len(queries),
        "context_chars": gen.context_chars,
        "accuracy": accuracy(rows),
        "seconds": round(time.perf_counter() - t0, 1),
        "rule": "normalised gold answer is a substring of the normalised generated answer",
        "samples": rows,
    }


def _examples(pipe: Pipeline, queries: list[dict[str, Any]], cfg: EvalConfig) -> list[Any]:
    """A few queries with the hits of the last configuration, hits marked by the fact rule."""
    from mmrag.evals.report import Example

    config = cfg.configs[-1]
    opts = options(config, cfg)
    opts.pop("multi_hop", None)
    out = []
    for q in queries:
        hits = pipe.retrieve(q["query"], k=4, modality="text", **opts).hits
        facts = [e["fact"] for e in q.get("evidence_list", [])]
        found = query_metrics([h.text or "" for h in hits], facts)["hits@4"] > 0
        out.append(Example(q["query"], hits, note=f"{config}; gold answer: {q['answer']}", ok=found))
    return out


def evaluate(
    cfg: EvalConfig, bench_file: str | Path | None = None, show_table: bool = True
) -> dict[str, Any]:
    """Run every configuration over the split; return the metrics, write the run folder and `bench_file`."""
    bad = [c for c in cfg.configs if ALIASES.get(c, c) not in SWEEP]
    if bad:
        raise MMRAGError(f"unknown retrieval configuration {bad[0]!r}: choose from {', '.join(SWEEP)}")
    qpath, cpath, label = resolve_data(cfg.split, cfg.queries, cfg.corpus)
    queries = load_queries(qpath)
    if cfg.limit:
        queries = queries[: cfg.limit]
    # official rule: null queries have no evidence and are skipped for retrieval
    scored = [q for q in queries if q["question_type"] != NULL_TYPE and q.get("evidence_list")]
    rows: list[dict[str, Any]] = []
    per_config: dict[str, float] = {}
    index_seconds = search_seconds = 0.0
    later = [c for c in cfg.configs if contextual(c)]
    if later and len(later) < len(cfg.configs):  # the contextual index's configurations first
        t0 = time.perf_counter()
        with open_index(cpath, cfg, with_context=True) as pipe:
            index_seconds += time.perf_counter() - t0
            t1 = time.perf_counter()
            _run_configs(pipe, scored, cfg, per_config, later, rows)
            search_seconds += time.perf_counter() - t1
    t0 = time.perf_counter()
    with open_index(cpath, cfg, with_context=len(later) == len(cfg.configs)) as pipe:
        index_seconds += time.perf_counter() - t0
        t1 = time.perf_counter()
        rest = [c for c in cfg.configs if c not in later or len(later) == len(cfg.configs)]
        _run_configs(pipe, scored, cfg, per_config, rest, rows)
        search_seconds += time.perf_counter() - t1
        models = {"text": pipe.config.encoders.text, "bm25": "mmrag bm25 (sparse, IDF in Qdrant)"}
        answers = _answers(pipe, queries, cfg) if cfg.answers else None
        examples = _examples(pipe, scored[:6], cfg) if cfg.report else []
        points = pipe.store.count()
        index_dir = str(pipe.index_dir)
    metrics: dict[str, Any] = {
        "suite": "multihop",
        "label": label,
        "split": cfg.split,
        "queries_file": str(qpath),
        "corpus": str(cpath),
        "queries": len(queries),
        "questions": len(scored),
        "null_skipped": len(queries) - len(scored),
        "configs": {c: aggregate([{"type": r["type"], "metrics": r[c]} for r in rows]) for c in cfg.configs},
        "ms_per_query": {c: round(1000 * s / max(1, len(scored)), 1) for c, s in per_config.items()},
        "models": models,
        "fusion": f"rrf (k={cfg.rrf_k})",
        "rerank": {
            "threshold": cfg.rerank_threshold,
            "method": cfg.rerank,
            "model": cfg.rerank_model or "method default",
            "candidates": cfg.rerank_candidates,
        },
        "decomposer": cfg.decomposer,
        "hubness_bank": cfg.hubness_bank,
        "k": cfg.k,
        "prefetch": cfg.prefetch,
        "index": index_dir,
        "points": points,
        "index_seconds": round(index_seconds, 1),
        "search_seconds": round(search_seconds, 1),
        "protocol": "official MultiHop-RAG retrieval rule: fact substring after removing spaces/newlines",
    }
    if answers is not None:
        metrics["answers"] = answers
    run = write_run(cfg.runs, "multihop", rows, metrics, markdown(metrics), asdict(cfg))
    metrics["run"] = str(run)
    if len(cfg.configs) > 1:
        from mmrag.evals.plots import bar_chart

        values = {c: metrics["configs"][c]["all"] for c in cfg.configs}
        metrics["plot"] = str(bar_chart(run / "sweep.png", values, METRICS, f"{label} · {cfg.split}"))
    if cfg.report:
        from mmrag.evals.report import write_report

        metrics["report"] = str(write_report(run, f"{label} · {cfg.split}", examples))
    if bench_file is not None:
        write_json(bench_file, metrics)
    if show_table:
        print_table(metrics)
    return metrics
