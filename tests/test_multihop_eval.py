"""MultiHop-RAG eval: the official metric rule on hand-made lists, the loader, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.evals.multihop_data import aggregate, load_queries, normalise, query_metrics, resolve_data
from mmrag.types import MMRAGError

FACT_A = "The river rose by two metres overnight."
FACT_B = "Officials closed the  bridge\nat noon."


def test_normalise_drops_spaces_and_newlines_only() -> None:
    assert normalise(" a b\nc\t.") == "abc\t."


def test_hit_is_a_fact_substring_after_normalisation() -> None:
    # the fact is found across different spacing and line breaks; nothing else counts
    retrieved = ["unrelated text", "Earlier: The river rose by two\nmetres overnight. Later, more."]
    m = query_metrics(retrieved, [FACT_A])
    assert m["hits@10"] == 1.0 and m["hits@4"] == 1.0
    assert m["mrr@10"] == pytest.approx(1 / 2)
    assert m["map@10"] == pytest.approx(1 / 2)


def test_hits_at_4_and_10_cutoffs() -> None:
    filler = [f"noise {i}" for i in range(11)]
    at5 = filler[:4] + [FACT_A] + filler[4:]
    m5 = query_metrics(at5, [FACT_A])
    assert (m5["hits@4"], m5["hits@10"], m5["mrr@10"]) == (0.0, 1.0, pytest.approx(1 / 5))
    at11 = filler[:10] + [FACT_A]  # rank 11 is past every cutoff
    assert query_metrics(at11, [FACT_A]) == {"hits@10": 0.0, "hits@4": 0.0, "map@10": 0.0, "mrr@10": 0.0}


def test_map_counts_each_fact_once_and_divides_by_the_number_of_facts() -> None:
    # rank 1 holds A, rank 2 repeats A (no new fact), rank 3 holds B
    retrieved = [FACT_A, FACT_A + " again", "x " + FACT_B.replace("\n", " ")]
    m = query_metrics(retrieved, [FACT_A, FACT_B])
    assert m["map@10"] == pytest.approx((1 / 1 + 1 / 3) / 2)
    assert m["mrr@10"] == 1.0
    # both facts in one chunk: two new facts at rank 2
    both = query_metrics(["noise", FACT_A + " " + FACT_B], [FACT_A, FACT_B])
    assert both["map@10"] == pytest.approx((2 / 2) / 2)


def test_aggregate_means_per_type() -> None:
    rows = [
        {"type": "inference_query", "metrics": query_metrics([FACT_A], [FACT_A])},
        {"type": "temporal_query", "metrics": query_metrics(["noise"], [FACT_A])},
    ]
    agg = aggregate(rows)
    assert agg["all"]["hits@10"] == 0.5 and agg["all"]["n"] == 2
    assert agg["inference_query"]["mrr@10"] == 1.0 and agg["temporal_query"]["mrr@10"] == 0.0


def test_load_queries_rejects_a_bad_schema(tmp_path: Path) -> None:
    bad = tmp_path / "q.json"
    bad.write_text(json.dumps([{"question": "no query key"}]))
    with pytest.raises(MMRAGError, match="q.json"):
        load_queries(bad)
    with pytest.raises(MMRAGError, match="not found"):
        resolve_data("dev", str(tmp_path / "missing.json"), str(bad))


ARTICLES = [
    ("Floods in Riverton", "weather", [FACT_A, "Residents moved their cars to higher ground."]),
    ("Bridge closure", "city", [FACT_B.replace("  ", " "), "Traffic was diverted through the old tunnel."]),
    ("Football final", "sports", ["The home team won the cup with a late penalty kick."]),
    ("Chip exports", "technology", ["The company shipped record numbers of processors this quarter."]),
]


def _write_data(tmp_path: Path) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus.json"
    corpus.write_text(
        json.dumps(
            [
                {
                    "title": t,
                    "author": "A",
                    "source": "S",
                    "published_at": "2023-10-01",
                    "category": c,
                    "url": f"https://e.x/{i}",
                    "body": "\n".join(facts),
                }
                for i, (t, c, facts) in enumerate(ARTICLES)
            ]
        )
    )
    ev = {"title": "", "author": "A", "source": "S", "category": "", "published_at": "", "url": ""}
    queries = [
        {
            "query": "How much did the river rise overnight in Riverton?",
            "answer": "two metres",
            "question_type": "inference_query",
            "evidence_list": [ev | {"fact": FACT_A}],
        },
        {
            "query": "When did officials close the bridge?",
            "answer": "noon",
            "question_type": "temporal_query",
            "evidence_list": [ev | {"fact": FACT_B}],
        },
        {
            "query": "Who won the chess cup?",
            "answer": "Insufficient information.",
            "question_type": "null_query",
            "evidence_list": [],
        },
        {
            "query": "Which team won the cup with a penalty?",
            "answer": "the home team",
            "question_type": "inference_query",
            "evidence_list": [ev | {"fact": ARTICLES[2][2][0]}],
        },
    ]
    qfile = tmp_path / "MultiHopRAG.json"
    qfile.write_text(json.dumps(queries))
    return qfile, corpus


def test_cli_end_to_end_on_a_tiny_corpus(tmp_path: Path) -> None:
    qfile, corpus = _write_data(tmp_path)
    runs = tmp_path / "runs"
    args = ["eval", "multihop", "--queries", str(qfile), "--corpus", str(corpus), "--limit", "3",
            "--runs", str(runs), "--json", "--report"]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    # --limit 3 keeps the first three; the null one among them is skipped for retrieval
    assert (out["queries"], out["questions"], out["null_skipped"]) == (3, 2, 1)
    assert set(out["configs"]) == {"bm25", "dense", "hybrid"}
    for by_type in out["configs"].values():
        assert set(by_type) == {"all", "inference_query", "temporal_query"}
        assert by_type["all"]["hits@10"] == 1.0  # 4 articles, k=10: every evidence chunk is returned
    assert out["configs"]["bm25"]["all"]["mrr@10"] == 1.0  # the queries share rare words with one article
    run = Path(out["run"])
    files = {"config.json", "samples.jsonl", "metrics.json", "metrics.md", "sweep.png", "report.html"}
    assert {p.name for p in run.iterdir()} == files
    assert len((run / "samples.jsonl").read_text().splitlines()) == 2
    md = (run / "metrics.md").read_text()
    assert "| hybrid | 1.000 |" in md and "inference_query hits@4 / mrr@10" in md
    assert (run / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "<table>" in (run / "report.html").read_text()
    # a second run reuses the cached index folder
    r2 = CliRunner().invoke(app, args)
    assert r2.exit_code == 0, r2.output
    assert json.loads(r2.stdout)["index"] == out["index"]
    assert len(list((runs / "multihop").glob("index-*"))) == 1


def test_cli_names_missing_data(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app, ["eval", "multihop", "--queries", str(tmp_path / "nope.json"), "--runs", str(tmp_path)]
    )
    assert r.exit_code != 0
    assert "not found" in r.output
