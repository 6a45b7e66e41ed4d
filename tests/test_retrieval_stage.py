"""The retrieval stage: query filters, client-side fusion, multi-hop sub-queries, answer scoring."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mmrag.evals.multihop_answers import accuracy, gold_hits, is_correct, is_correct_strict
from mmrag.retrieve.filters import FilterReader, attributions, find_dates, source_aliases
from mmrag.retrieve.hybrid import fuse
from mmrag.retrieve.multihop import fuse_hits, parse_queries, rule_queries
from mmrag.store.base import ScoredPoint
from mmrag.types import Hit, MMRAGError

SOURCES = [
    "TechCrunch",
    "The Age",
    "The Independent - Life and Style",
    "Fortune",
    "Cnbc | World Business News",
]


def test_sources_read_case_sensitively_with_aliases() -> None:
    r = FilterReader(SOURCES, has_dates=False)
    qf = r.read("Did 'The Age' and TechCrunch agree, while The Independent covered it?")
    assert qf.sources == ["The Age", "TechCrunch", "The Independent - Life and Style"]
    # a common word that happens to be a source name in lower case is not a source
    assert r.read("a small fortune was spent").sources == []
    assert r.read("as Fortune reported").sources == ["Fortune"]
    assert r.read("what did Cnbc say").sources == ["Cnbc | World Business News"]
    assert "Age" in source_aliases(["The Age"])


def test_dates_in_three_spellings_and_slack() -> None:
    text = "published on October 22, 2023, then 6 Nov 2023 and 2023-12-15; not February 30, 2023"
    assert find_dates(text) == ["2023-10-22", "2023-11-06", "2023-12-15"]
    r = FilterReader([], has_dates=True)
    m = r.read("the report of Oct. 1st, 2023").match(slack_days=1)
    assert m == {"published_date": ["2023-09-30", "2023-10-01", "2023-10-02"]}
    # no dates in the index: no date filter even when the question names one
    assert not FilterReader([], has_dates=False).read("on October 22, 2023")


@pytest.mark.parametrize(
    ("question", "unindexed"),
    [
        (
            "What did an article by Variety and another by The Hollywood Reporter say?",
            ["Variety", "The Hollywood Reporter"],
        ),
        ("According to Bloomberg, did TechCrunch report the deal?", ["Bloomberg"]),
        ("Did a Reuters report and The Age's piece agree?", ["Reuters"]),
        ("As reported by CNET, and as mentioned by Fortune, was it late?", ["CNET"]),
        # indexed names, also with "The" dropped, a " - " part or words such as "and" inside them
        ("Did The Independent - Life and Style's report, and an article from Age, agree?", []),
        (
            "Does the TechCrunch article on Spill differ according to Mozilla's perspective?",
            [],
        ),  # a person's view
        ("Did Sporting News's 'NBA Rookie of the Year' article confirm it?", []),  # a quoted title
        ("What did the BBC article say?", []),  # short for the indexed "BBC News - Arts"
        ("Who won the match in Perth on Sunday?", []),  # credits nobody
        ("Did the TechCrunch report from November 5 and the article in Q3 agree?", []),  # periods
    ],
)
def test_publications_a_question_credits_that_the_index_lacks(question: str, unindexed: list[str]) -> None:
    r = FilterReader([*SOURCES, "Sporting News", "BBC News - Arts"], has_dates=False)
    assert r.read(question).unindexed == unindexed
    assert attributions("an article by The Verge and a Forbes report") == ["The Verge", "Forbes"]


def test_filter_reader_vocabulary_from_payloads() -> None:
    r = FilterReader.from_payloads([{"source": "Wired", "published_date": "2023-11-25"}, {"path": "x"}])
    qf = r.read("Between Wired on November 25, 2023 and The Verge")
    assert qf.sources == ["Wired"]  # The Verge is not in the index
    assert qf.dates == ["2023-11-25"]


def _pts(ids: str, scores: list[float] | None = None) -> list[ScoredPoint]:
    scores = scores or [1.0] * len(ids)
    return [ScoredPoint(i, s, {"id": i}) for i, s in zip(ids, scores, strict=True)]


def test_rrf_matches_the_formula() -> None:
    out = fuse([_pts("abc"), _pts("cax")], "rrf", limit=10, rrf_k=2)
    expect = {
        "a": 1 / 3 + 1 / 4,
        "b": 1 / 4,
        "c": 1 / 5 + 1 / 3,
        "x": 1 / 5,
    }
    assert [p.id for p in out] == sorted(expect, key=lambda i: -expect[i])
    assert all(abs(p.score - expect[p.id]) < 1e-12 for p in out)
    # k sets how much a top rank counts against agreement: with k=0 a first place (1/1) beats
    # third places in both lists (1/3 + 1/3); with k=60 the agreement wins
    lists = [_pts("axyb"), _pts("cuvb")]
    assert fuse(lists, "rrf", limit=1, rrf_k=0)[0].id in ("a", "c")
    assert fuse(lists, "rrf", limit=1, rrf_k=60)[0].id == "b"


def test_dbsf_normalises_each_list() -> None:
    out = fuse([_pts("ab", [10.0, 0.0]), _pts("ba", [0.3, 0.1])], "dbsf", limit=2, rrf_k=2)
    assert {p.id for p in out} == {"a", "b"}
    with pytest.raises(MMRAGError, match="unknown fusion"):
        fuse([_pts("a")], "borda", limit=1, rrf_k=2)


def test_rule_queries_split_clauses() -> None:
    q = (
        "Does the 'Sporting News' article claim that the Bears' defense sacked Joshua Dobbs, while the "
        "'Yardbarker' article discusses the Baltimore Ravens defense's ranking?"
    )
    subs = rule_queries(q)
    assert len(subs) == 2
    assert "Sporting News" in subs[0] and "Yardbarker" in subs[1]
    assert rule_queries("Which company makes the iPhone?") == []


def test_parse_llm_queries() -> None:
    reply = "1. TechCrunch report on Google\n- The Verge on Apple deals\n\n2. TechCrunch report on Google\nok"
    assert parse_queries(reply, "q", 4) == ["TechCrunch report on Google", "The Verge on Apple deals"]


def test_fuse_hits_keeps_payloads() -> None:
    a = [Hit("1", 0.9, "text", "f", text="one", payload={"k": 1}), Hit("2", 0.8, "text", "f", text="two")]
    b = [Hit("2", 0.7, "text", "f", text="two"), Hit("3", 0.6, "text", "f", text="three")]
    out = fuse_hits([a, b], 3, rrf_k=2)
    assert [h.id for h in out] == ["2", "1", "3"]
    assert out[1].payload == {"k": 1}


def test_answer_rule_and_accuracy() -> None:
    assert is_correct("Yes, both reports agree [1].", "Yes")
    assert not is_correct("No.", "Yes")
    assert is_correct("Insufficient information.", "Insufficient information.")
    assert is_correct("It was Sam Bankman-Fried.", "Sam Bankman Fried")
    # the official rule is a substring: "no" inside a word, or both words given, count
    assert is_correct("Announcing the deal [1].", "No") and is_correct("[1] Yes [2] No", "Yes")
    assert not is_correct_strict("Announcing the deal [1].", "No")
    assert not is_correct_strict("[1] Yes [2] No", "Yes")
    assert is_correct_strict("No, the reports differ [2].", "No")
    assert is_correct_strict("It was Sam Bankman-Fried.", "Sam Bankman Fried")
    assert is_correct("Applebee's [1]", "Apple") and not is_correct_strict("Applebee's [1]", "Apple")
    rows = [
        {"type": "t1", "retrieved": {"correct": True}, "gold": {"correct": True}},
        {"type": "t2", "retrieved": {"correct": False}, "gold": {"correct": True}},
    ]
    acc = accuracy(rows)
    assert acc["retrieved"]["all"] == 0.5 and acc["gold"]["all"] == 1.0 and acc["retrieved"]["t1"] == 1.0


def test_gold_hits_carry_the_facts(shared_data: Path) -> None:
    q = json.loads((shared_data / "multihop" / "dev.json").read_text())[0]
    hits = gold_hits(q)
    assert len(hits) == len(q["evidence_list"])
    assert all(e["fact"] in (h.text or "") for h, e in zip(hits, q["evidence_list"], strict=True))


@pytest.fixture(scope="module")
def news_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny news corpus in the MultiHop-RAG `corpus.json` schema, indexed with the offline profile."""
    from mmrag.pipeline import Pipeline

    root = tmp_path_factory.mktemp("news")
    articles = [
        ("TechCrunch", "2023-10-22T10:00:00+00:00", "Epic Games sued Google over the Play Store fees."),
        ("The Verge", "2023-11-05T11:00:00+00:00", "Apple defended its default search deal with Google."),
        ("Fortune", "2023-10-04T09:00:00+00:00", "Sam Bankman-Fried went on trial for fraud at FTX."),
        ("TechCrunch", "2023-12-15T17:00:00+00:00", "A news publisher sued Google for antitrust."),
    ]
    corpus = [
        {"title": f"a{i}", "source": s, "published_at": d, "body": b} for i, (s, d, b) in enumerate(articles)
    ]
    (root / "corpus.json").write_text(json.dumps(corpus))
    with Pipeline.from_config(profile="offline", index=str(root / "idx"), **{"encoders.image": None}) as p:
        assert p.index([root / "corpus.json"]).ok
    return root / "idx"


def test_retrieve_with_filters_rerank_and_multi_hop(news_index: Path) -> None:
    from mmrag.pipeline import Pipeline
    from mmrag.retrieve.multihop import multi_hop

    with Pipeline.load(news_index) as p:
        q = "What did the TechCrunch report of December 15, 2023 say about Google?"
        plain = p.retrieve(q, k=4)
        filtered = p.retrieve(q, k=4, filters_from_query=True)
        assert filtered.filters["source"] == ["TechCrunch"]
        assert "2023-12-15" in filtered.filters["published_date"]
        assert "news publisher" in (filtered.hits[0].text or "")  # the one article matching both names
        assert {h.id for h in filtered.hits} == {h.id for h in plain.hits}  # filled up from the rest
        ranked = p.retrieve("Google antitrust", k=4, rerank="bi-encoder")
        assert ranked.rerank and ranked.rerank.startswith("bi-encoder") and ranked.k == 4
        assert all(0.0 <= h.score <= 1.0 for h in ranked.hits)
        assert [h.score for h in ranked.hits] == sorted((h.score for h in ranked.hits), reverse=True)
        adaptive = p.retrieve("Google antitrust", k=4, rerank="bi-encoder", adaptive_k=True)
        assert 1 <= adaptive.k <= 4 and len(adaptive.hits) == adaptive.k
        with pytest.raises(MMRAGError, match="adaptive k reads a reranker"):
            p.retrieve("Google", adaptive_k=True)
        with pytest.raises(MMRAGError, match="unknown reranker"):
            p.retrieve("Google", rerank="oracle")
        credited = p.retrieve("What did a Bloomberg article say about Google?", k=4, filters_from_query=True)
        assert credited.filters["unindexed_source"] == ["Bloomberg"] and credited.hits  # still searched
        # `ask` refuses it, naming the publication, without loading a generator (there is none here)
        p.config.generate = replace(p.config.generate, model=str(news_index / "no-such-model"))
        said = p.ask("What did a Bloomberg article say about Google?", filters_from_query=True)
        assert said.text == "Insufficient information: nothing indexed comes from Bloomberg."
        assert said.insufficient and said.sources and said.timings["load"] == 0.0
        question = "Did Fortune report the FTX trial, while TechCrunch covered Epic Games?"
        res = multi_hop(p.retrieve, question, 4, decomposer="rules")
        assert len(res.queries) == 3  # the question and its two clauses
        texts = " ".join(h.text or "" for h in res.hits[:2])
        assert "Bankman-Fried" in texts and "Epic Games" in texts
