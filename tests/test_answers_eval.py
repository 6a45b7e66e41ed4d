"""`mmrag eval answers`: the three columns and their rates, on a tiny model built to loop."""

from __future__ import annotations

from pathlib import Path

from test_generation_hygiene import looping_llama

from mmrag.config import GenerateConfig
from mmrag.evals.answers import answer_metrics, answer_rows, markdown, pick
from mmrag.retrieve.hybrid import Retrieval
from mmrag.types import Hit

FACT = {"fact": "paris is the capital of france", "title": "t", "source": "s", "published_at": "2023-10-01"}
QUERIES = [
    {
        "query": "what is the capital of france ?",
        "question_type": "inference_query",
        "answer": "paris",
        "evidence_list": [FACT],
    },
    {
        "query": "what is the capital of the moon , according to Variety ?",
        "question_type": "null_query",
        "answer": "Insufficient information.",
        "evidence_list": [],
    },
]


def test_answer_suite_counts_loops_duplicates_and_refusals(tmp_path: Path) -> None:
    gen = GenerateConfig(
        model=str(looping_llama(tmp_path / "llm")), device="cpu", quantize=False, max_new_tokens=30
    )
    # a page point and its chunk: one source once merged, a duplicate for the old packer
    hits = [
        Hit("chunk", 0.9, "text", "/d/r.pdf", page=0, text="paris is the capital of france"),
        Hit("page", 0.8, "page", "/d/r.pdf", page=0, text="paris is the capital of france . more"),
    ]

    def retrieve(q: str) -> Retrieval:  # what a router reads from a question crediting an unindexed source
        return Retrieval(hits, len(hits), filters={"unindexed_source": ["Variety"]} if "Variety" in q else {})

    rows = answer_rows(QUERIES, retrieve, gen, progress=False)
    m = answer_metrics(rows)
    assert m["before"]["repetition_rate"] == 1.0 and m["retrieved"]["repetition_rate"] == 0.0
    assert m["gold"]["repetition_rate"] == 0.0
    assert m["retrieved"]["duplicate_source_rate"] == 0.0 and m["before"]["duplicate_source_rate"] == 1.0
    assert m["retrieved"]["accuracy"] == 1.0 and m["retrieved"]["answerable"] == 1
    # the null query credits a publication nothing indexed comes from: refused, naming it, and only
    # where `mmrag ask` would refuse it (the `before` column never did)
    assert m["retrieved"]["null_refusal_rate"] == 1.0 and m["retrieved"]["false_refusal_rate"] == 0.0
    assert rows[1]["retrieved"]["answer"] == "Insufficient information: nothing indexed comes from Variety."
    assert m["before"]["null_refusal_rate"] == 0.0
    assert m["retrieved"]["citation_rate"] == 0.0  # the tiny vocabulary has no "[": labels cannot be forced
    assert rows[0]["retrieved"]["dropped"] == 1
    table = markdown(
        {"columns": m, "label": "test", "split": "test", "queries": 2, "model": "loop", "config": "c", "k": 2}
    )
    assert "| repetition rate | 0.000 | 0.000 | 1.000 |" in table


def test_fixed_sample_takes_each_type_alike() -> None:
    qs = [{"question_type": t, "i": i} for i in range(5) for t in ("a", "b", "c", "d")]
    got = pick(qs, 8)
    assert [q["question_type"] for q in got] == ["a", "b", "c", "d"] * 2 and pick(qs, 0) == qs
