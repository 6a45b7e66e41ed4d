"""Answer quality on MultiHop-RAG: accuracy, loops, citations, refusals, duplicated context, time per answer.

`mmrag eval answers` answers a fixed sample of the split (the first N/4 queries of each question
type, null queries included) three ways in one run, query by query, so that the machine's load is
shared alike:

- `retrieved`: the top hits of a retrieval configuration, packed and answered as `mmrag ask` does
  (loop stopping, repetition penalty on generated tokens, a label after each sentence);
- `gold`: the query's evidence facts as the sources (the upper bound retrieval cannot beat);
- `before`: the retrieved hits again with the generation hygiene off (no loop stopping, no
  penalty, labels only where the model writes them): what answers were before issue 17.

Which of `retrieved` and `before` runs first alternates between queries.

Metrics per column: accuracy on answerable queries (the MultiHop-RAG rule: the normalised gold
answer is a substring of the normalised answer), the refusal rate on null queries ("Insufficient
information") next to the false-refusal rate on answerable ones, the repetition rate (answers
with a repeated sentence or 8-word run), the citation rate (answers that are not refusals and had
sources, citing an existing label),
the invalid-label rate, the duplicate-source rate of the packed context (`before`: of the top hits
as the old packer kept them) and the generation time per answer.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.evals import write_json, write_run
from mmrag.evals.multihop_answers import gold_hits, is_correct, is_correct_strict
from mmrag.evals.multihop_data import NULL_TYPE, load_queries, resolve_data

if TYPE_CHECKING:
    from mmrag.answer.ask import Answer
    from mmrag.answer.question import Found
    from mmrag.config import GenerateConfig

COLUMNS = ("retrieved", "gold", "before")
RATES = (
    ("accuracy (answerable)", "accuracy"),
    ("strict accuracy (whole words; Yes/No without the other)", "strict_accuracy"),
    ("null-query refusal rate", "null_refusal_rate"),
    ("false-refusal rate (answerable)", "false_refusal_rate"),
    ("repetition rate", "repetition_rate"),
    ("citation rate", "citation_rate"),
    ("invalid-label rate", "invalid_label_rate"),
    ("duplicate-source rate", "duplicate_source_rate"),
    ("seconds per answer (generation)", "seconds_per_answer"),
)


@dataclass
class EvalConfig:
    """One answer-quality run."""

    split: str = "test"
    queries: str | None = None
    corpus: str | None = None
    sample: int = 8
    """Queries answered: the first sample/4 of each question type (0: all queries of the split)."""
    config: str = "hybrid+filters"
    """Retrieval configuration of the `retrieved` and `before` columns (`mmrag eval multihop`'s names)."""
    k: int = 3
    context_chars: int = 2500
    max_new_tokens: int = 96
    profile: str = "offline"
    runs: str = "runs"


def pick(queries: Sequence[dict[str, Any]], sample: int) -> list[dict[str, Any]]:
    """The first `sample // 4` queries of each question type, in file order (all when `sample` is 0)."""
    if not sample:
        return list(queries)
    per_type: dict[str, int] = defaultdict(int)
    out = []
    for q in queries:
        if per_type[q["question_type"]] < max(1, sample // 4):
            per_type[q["question_type"]] += 1
            out.append(q)
    return out


def record(ans: Answer, gold: str, duplicates: int | None = None) -> dict[str, Any]:
    """One answer, scored."""
    from mmrag.answer.ask import duplicate_sources
    from mmrag.generate.stopping import has_repetition

    c = ans.citations()
    return {
        "answer": ans.text,
        "correct": is_correct(ans.text, gold),
        "strict": is_correct_strict(ans.text, gold),
        "refusal": ans.insufficient,
        "repetition": has_repetition(ans.text),
        "cited": c.cited,
        "invalid_labels": c.invalid,
        "uncited_sentences": len(c.uncited_sentences),
        "sources": len(ans.sources),
        "dropped": len(ans.dropped),
        "duplicates": duplicate_sources(ans.sources) if duplicates is None else duplicates,
        "seconds": ans.timings.get("generate", 0.0),
    }


def answer_rows(
    queries: Sequence[dict[str, Any]],
    retrieve: Callable[[str], Found],
    gen: GenerateConfig,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Answer each query in the three columns; alternate which of `retrieved` and `before` goes first.

    `retrieved` is answered as `mmrag ask` answers (a question crediting a publication that nothing
    indexed comes from is refused); `before` (the hygiene before issue 17) never refuses so.
    """
    from rich.progress import Progress

    from mmrag.answer.ask import Source, answer, duplicate_sources
    from mmrag.answer.question import unindexed_of

    before = replace(gen, stop_on_repetition=False, repetition_penalty=1.0, label_every_sentence=False)
    rows = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("answering", total=len(queries))
        for i, q in enumerate(queries):
            found = retrieve(q["query"])
            hits = found.hits
            row: dict[str, Any] = {
                "i": i,
                "query": q["query"],
                "type": q["question_type"],
                "gold_answer": q["answer"],  # the column "gold" is the answer from the gold evidence
            }
            order = ("retrieved", "before") if i % 2 == 0 else ("before", "retrieved")
            for col in (*order, "gold"):
                if col == "gold":
                    row[col] = record(answer(q["query"], gold_hits(q), gen), q["answer"])
                elif col == "retrieved":
                    given = answer(q["query"], hits, gen, unindexed=unindexed_of(found))
                    row[col] = record(given, q["answer"])
                else:  # the old packer kept the top hits as they came: count their duplicates
                    old = duplicate_sources([Source(j + 1, h) for j, h in enumerate(hits)])
                    row[col] = record(answer(q["query"], hits, before), q["answer"], old)
            rows.append(row)
            bar.advance(task)
    return rows


def _rate(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def answer_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rates of every column (None where no answer qualifies, e.g. no null query in the sample)."""
    out: dict[str, dict[str, Any]] = {}
    for col in COLUMNS:
        rs = [r for r in rows if col in r]
        null = [r[col] for r in rs if r["type"] == NULL_TYPE]
        answerable = [r[col] for r in rs if r["type"] != NULL_TYPE]
        # an answer given no sources (a null query's empty gold evidence) has no label to cite
        claims = [r[col] for r in rs if not r[col]["refusal"] and r[col]["sources"]]
        by_type: dict[str, list[bool]] = defaultdict(list)
        for r in rs:
            by_type[r["type"]].append(r[col]["correct"])
        secs = [r[col]["seconds"] for r in rs]
        out[col] = {
            "n": len(rs),
            "accuracy": _rate([a["correct"] for a in answerable]),
            "accuracy_by_type": {t: _rate(v) for t, v in by_type.items()},
            "strict_accuracy": _rate([bool(a.get("strict")) for a in answerable]),
            "null_refusal_rate": _rate([a["refusal"] for a in null]),
            "false_refusal_rate": _rate([a["refusal"] for a in answerable]),
            "repetition_rate": _rate([r[col]["repetition"] for r in rs]),
            "citation_rate": _rate([bool(a["cited"]) for a in claims]),
            "invalid_label_rate": _rate([bool(r[col]["invalid_labels"]) for r in rs]),
            "duplicate_source_rate": _rate([r[col]["duplicates"] > 0 for r in rs]),
            "seconds_per_answer": round(sum(secs) / len(secs), 2) if secs else None,
            "null_queries": len(null),
            "answerable": len(answerable),
        }
    return out


def markdown(metrics: dict[str, Any]) -> str:
    """The answer-quality table: rows metrics, columns retrieved / gold evidence / before."""
    m = metrics["columns"]
    lines = [
        f"Answer quality, {metrics['label']}, split `{metrics['split']}`, {metrics['queries']} queries "
        f"({m['retrieved']['answerable']} answerable, {m['retrieved']['null_queries']} null), "
        f"generator `{metrics['model']}`, retrieval `{metrics['config']}` (top {metrics['k']})",
        "",
        "| metric | retrieved | gold evidence | retrieved, before (no loop stop, no labels) |",
        "|---|---|---|---|",
    ]
    for name, key in RATES:
        cells = ["–" if m[c][key] is None else f"{m[c][key]:.3f}" for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def prepare(cfg: EvalConfig) -> tuple[Path, Path, str, list[dict[str, Any]], str, Any, dict[str, Any]]:
    """What a run answers from: the queries file, the corpus, its label, the sample, the retrieval
    configuration's name, its MultiHop eval settings and its `Pipeline.retrieve` options."""
    from mmrag.evals import multihop

    qpath, cpath, label = resolve_data(cfg.split, cfg.queries, cfg.corpus)
    queries = pick(load_queries(qpath), cfg.sample)
    config = getattr(multihop, "ALIASES", {}).get(cfg.config, cfg.config)
    mh = multihop.EvalConfig(split=cfg.split, runs=cfg.runs, configs=[config], profile=cfg.profile)
    opts = multihop.options(config, mh)
    opts.pop("multi_hop", None)
    return Path(qpath), Path(cpath), label, queries, config, mh, opts


def evaluate(
    cfg: EvalConfig, bench_file: str | Path | None = None, show_table: bool = True
) -> dict[str, Any]:
    """Answer the sample in the three columns; write the run folder (and `bench_file`); return the metrics."""
    from mmrag.evals import multihop

    qpath, cpath, label, queries, config, mh, opts = prepare(cfg)
    t0 = time.perf_counter()
    with multihop.open_index(cpath, mh) as pipe:
        gen = replace(
            pipe.config.generate, max_new_tokens=cfg.max_new_tokens, context_chars=cfg.context_chars
        )
        rows = answer_rows(
            queries, lambda q: pipe.retrieve(q, k=cfg.k, modality="text", **opts), gen, show_table
        )
    metrics: dict[str, Any] = {
        "suite": "answers",
        "label": label,
        "split": cfg.split,
        "queries_file": str(qpath),
        "queries": len(queries),
        "model": gen.model,
        "config": config,
        "k": cfg.k,
        "context_chars": cfg.context_chars,
        "max_new_tokens": cfg.max_new_tokens,
        "columns": answer_metrics(rows),
        "seconds": round(time.perf_counter() - t0, 1),
        "rule": "normalised gold answer is a substring of the normalised generated answer",
    }
    run = write_run(cfg.runs, "answers", rows, metrics, markdown(metrics), asdict(cfg))
    metrics["run"] = str(run)
    if bench_file is not None:
        write_json(bench_file, {**metrics, "samples": rows})
    if show_table:
        from rich.console import Console
        from rich.markdown import Markdown

        Console(stderr=True).print(Markdown(markdown(metrics)))
    return metrics
