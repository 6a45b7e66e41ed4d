"""FinanceBench eval: page-level metrics on hand-made hits, the answer rule, the loader, and a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.evals.financebench_answers import is_correct, numbers_match, parse_numbers, reference_number
from mmrag.evals.financebench_data import (
    CONFIGS,
    DEFAULT_CONFIGS,
    aggregate,
    evidence_pages,
    load_questions,
    page_metrics,
    ranked_pages,
    resolve_data,
    select_split,
    split_of,
)
from mmrag.types import Hit, MMRAGError


def _hit(doc: str, page: int, modality: str = "text", i: int = 0) -> Hit:
    return Hit(id=f"{doc}-{page}-{i}", score=1.0, modality=modality, path=f"/data/{doc}.pdf", page=page)


# -- retrieval metrics -------------------------------------------------------------------------------
def test_ranked_pages_fold_windows_into_pages_in_rank_order() -> None:
    hits = [_hit("A", 3, i=0), _hit("A", 3, "page"), _hit("B", 3), _hit("A", 3, i=2), _hit("A", 1)]
    # a page without a page number (not a PDF hit) is not a page
    hits.append(Hit(id="x", score=0.1, modality="image", path="/data/photo.png"))
    assert ranked_pages(hits) == [("A", 3), ("B", 3), ("A", 1)]


def test_page_metrics_ranks_and_cutoffs() -> None:
    pages = [("A", i) for i in range(12)]
    m = page_metrics(pages, [("A", 2)])  # third page
    assert (m["recall@5"], m["recall@10"], m["mrr@10"], m["doc_recall@5"]) == (
        1.0,
        1.0,
        pytest.approx(1 / 3),
        1.0,
    )
    late = page_metrics(pages, [("A", 7)])  # eighth page: past 5, within 10
    assert (late["recall@5"], late["recall@10"], late["mrr@10"]) == (0.0, 1.0, pytest.approx(1 / 8))
    past = page_metrics(pages, [("A", 11)])  # twelfth: past every cutoff, but the document is right
    assert (past["recall@10"], past["mrr@10"], past["doc_recall@5"]) == (0.0, 0.0, 1.0)


def test_page_metrics_several_evidence_pages_and_documents() -> None:
    pages = [("A", 1), ("C", 0), ("A", 9), ("C", 4), ("C", 5), ("B", 2)]
    m = page_metrics(pages, [("A", 9), ("B", 2)])
    assert m["recall@5"] == 0.5  # A9 in the top 5, B2 sixth
    assert m["recall@10"] == 1.0
    assert m["mrr@10"] == pytest.approx(1 / 3)
    assert m["doc_recall@5"] == 0.5  # document A among the first five pages, B not
    # the right page number in the wrong document is no hit
    assert page_metrics([("B", 9)], [("A", 9)])["recall@5"] == 0.0
    with pytest.raises(ValueError):
        page_metrics(pages, [])


def test_aggregate_means_per_question_type() -> None:
    rows = [
        {"type": "metrics-generated", "c": {"metrics": page_metrics([("A", 0)], [("A", 0)])}},
        {"type": "novel-generated", "c": {"metrics": page_metrics([("A", 1)], [("A", 0)])}},
    ]
    agg = aggregate(rows, "c")
    assert agg["all"]["recall@5"] == 0.5 and agg["all"]["n"] == 2
    assert agg["metrics-generated"]["mrr@10"] == 1.0 and agg["novel-generated"]["mrr@10"] == 0.0
    assert agg["novel-generated"]["doc_recall@5"] == 1.0


# -- answer rule -------------------------------------------------------------------------------------
def test_parse_numbers_reads_currency_commas_percent_and_scale_words() -> None:
    assert parse_numbers("$1,200 million and 3.5%") == [(1.2e9, True), (3.5, False)]
    assert parse_numbers("AMCOR's Adj. EBITDA was $2,018mn; $1.8 bn; 47 new stores") == [
        (2.018e9, True),
        (1.8e9, True),
        (47.0, False),
    ]
    assert parse_numbers("(112) and -3.7") == [(112.0, False), (3.7, False)]  # signs dropped
    assert parse_numbers("FY2022 vs Q2 FY 2023") == [(2023.0, False)]  # digits glued to words are no numbers


def test_reference_number_only_for_numeric_gold_answers() -> None:
    assert reference_number("$11588.00") == (11588.0, False)
    assert reference_number("30.8%") == (30.8, False)
    assert reference_number("-3.7") == (3.7, False)
    assert reference_number("36%. The answer here assumes FY2023 refers to ...") == (36.0, False)
    assert reference_number("Yes, his name is Richard A. Johnson") is None
    assert reference_number("Best Buy generated $1.8 bn in FY 2023") is None


def test_numbers_match_within_one_percent_and_table_units() -> None:
    assert numbers_match((30.8, False), (30.5, False))  # 0.97 % apart
    assert not numbers_match((30.8, False), (31.2, False))  # 1.3 % apart
    assert numbers_match((11588.0, False), (11.6e9, True))  # a table in millions vs "$11.6 billion"
    assert not numbers_match((93.86, False), (93860.0, False))  # no unit guessing between plain numbers
    assert numbers_match((0.0, False), (0.0, False))


@pytest.mark.parametrize(
    ("answer", "gold", "correct"),
    [
        ("Capital expenditure was $11,588 million in FY2018.", "$11588.00", True),
        ("The figure is about 11.59 billion dollars.", "$11588.00", True),
        ("About 31.5%.", "30.8%", False),  # 2.2 % off
        ("Gross margin fell by 3.7 points.", "-3.7", True),
        ("In 2022 the ratio was 92.5.", "93.86", False),  # 1.4 % off
        ("In 2022 the ratio was 93.", "93.86", True),  # rounded, 0.9 % off
        ("yes, his name is richard a. johnson.", "Yes, his name is Richard A. Johnson", True),
        ("Insufficient information.", "Yes, his name is Richard A. Johnson", False),
        ("It declined from 36.8% to 34.6%.", "No, margins declined from 36.8% to 34.6% in FY2022.", False),
    ],
)
def test_is_correct(answer: str, gold: str, correct: bool) -> None:
    assert is_correct(answer, gold) is correct


# -- data --------------------------------------------------------------------------------------------
def test_load_questions_rejects_a_bad_record_and_names_the_file(tmp_path: Path) -> None:
    good = {
        "question": "q",
        "doc_name": "D",
        "evidence": [{"evidence_page_num": 3}, {"evidence_page_num": 3}],
    }
    f = tmp_path / "fb.jsonl"
    f.write_text(json.dumps(good) + "\n\n" + json.dumps(good) + "\n")
    qs = load_questions(f)
    assert len(qs) == 2 and evidence_pages(qs[0]) == [("D", 3)]  # repeated evidence counts once
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**good, "evidence": [{"evidence_page_num": "3"}]}) + "\n")
    with pytest.raises(MMRAGError, match=r"bad\.jsonl: record 0"):
        load_questions(bad)
    with pytest.raises(MMRAGError, match="not found"):
        resolve_data(str(tmp_path / "missing.jsonl"), str(tmp_path))


def test_split_halves_are_fixed_and_stratified() -> None:
    qs = [{"financebench_id": f"id_{i:02d}", "question_type": "t" if i < 5 else "u"} for i in range(9)]
    halves = split_of(list(reversed(qs)))  # order of the file does not matter: sorted by id per type
    assert [halves[f"id_{i:02d}"] for i in range(9)] == ["dev", "test", "dev", "test", "dev"] + [
        "dev",
        "test",
        "dev",
        "test",
    ]
    dev, test = select_split(qs, "dev"), select_split(qs, "test")
    assert (
        len(dev) == 5
        and len(test) == 4
        and not {q["financebench_id"] for q in dev} & {q["financebench_id"] for q in test}
    )
    assert select_split(qs, "all") == qs
    with pytest.raises(MMRAGError, match="unknown split"):
        select_split(qs, "train")


def test_shared_questions_split_in_two_halves(shared_data: Path) -> None:
    qs = load_questions(shared_data / "docs" / "financebench" / "questions.jsonl")
    dev, test = select_split(qs, "dev"), select_split(qs, "test")
    assert len(dev) + len(test) == len(qs) and abs(len(dev) - len(test)) <= 3
    for t in {q["question_type"] for q in qs}:
        n_dev = sum(q["question_type"] == t for q in dev)
        assert abs(n_dev - sum(q["question_type"] == t for q in test)) <= 1


def test_cli_names_missing_data(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["eval", "financebench", "--questions", str(tmp_path / "nope.jsonl")])
    assert r.exit_code != 0
    assert "not found" in r.output


# -- a real run --------------------------------------------------------------------------------------
SMALL_DOCS = (
    "ULTABEAUTY_2023Q4_EARNINGS",
    "PEPSICO_2023_8K_dated-2023-05-05",
    "FOOTLOCKER_2022_8K_dated-2022-05-20",
)


def _metrics(row: dict, config: str) -> dict[str, float]:
    return page_metrics([tuple(p) for p in row[config]["pages"]], [tuple(e) for e in row["evidence"]])


@pytest.mark.slow  # indexes 18 real pages with the offline models: about 40 s on 2 shared cores
def test_real_run_on_three_filings(shared_data: Path, tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    root = shared_data / "docs" / "financebench"
    expected = [q for q in load_questions(root / "questions.jsonl") if q["doc_name"] in SMALL_DOCS]
    runs = tmp_path / "runs"
    args = ["eval", "financebench", "--runs", str(runs), "--json"]
    args += [a for d in SMALL_DOCS for a in ("--doc", d)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["questions"] == len(expected) and out["documents"] == 3
    # EfficientNet has no text side: the image configuration is reported as skipped, not scored
    assert set(out["configs"]) == set(DEFAULT_CONFIGS) - {"image"}
    assert out["split"] == "all" and out["index"] == out["indexes"]["plain"]
    assert len(set(out["indexes"].values())) == 3  # plain, contextual, tables: an index each
    assert "no text side" in out["skipped"]["image"]
    run = Path(out["run"])
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == len(expected)
    for c in out["configs"]:
        # the reported numbers are the means of the per-question metrics recomputed from the pages
        for m in ("recall@5", "mrr@10", "doc_recall@5"):
            recomputed = [_metrics(r, c)[m] for r in rows]
            assert out["configs"][c]["all"][m] == pytest.approx(sum(recomputed) / len(rows), abs=1e-4)
        for r_ in rows:
            assert all(doc in SMALL_DOCS for doc, _ in r_[c]["pages"])  # only indexed filings come back
            assert len({tuple(p) for p in r_[c]["pages"]}) == len(r_[c]["pages"])  # pages deduplicated
    # single evidence pages among `pages`: a random ranking's MRR@10 is H(10) / pages; ask for twice that
    pages = sum(len(pdfium.PdfDocument(root / "pdfs" / f"{d}.pdf")) for d in SMALL_DOCS)
    chance = sum(1 / r for r in range(1, 11)) / pages
    for c in ("bm25", "hybrid"):
        assert out["configs"][c]["all"]["mrr@10"] > 2 * chance
    assert (run / "sweep.png").stat().st_size > 0
    # a second run reuses the cached index
    again = json.loads(CliRunner().invoke(app, args).stdout)
    # (three indexes: plain, with contextual chunks for the `+contextual` rows, with tables for `+tables`)
    assert again["index"] == out["index"] and len(list((runs / "financebench").glob("index-*"))) == 3
    assert again["indexes"] == out["indexes"]


def test_answers_use_a_weighted_configuration_as_search_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--answers` with `hybrid(3:1)+routing`: the dense weight is a search setting for the run (it is
    not a keyword of `retrieve`), routing is a keyword, and the pipeline's settings are restored."""
    from dataclasses import dataclass, field
    from types import SimpleNamespace

    import mmrag.answer.ask as ask
    from mmrag.config import MMRAGConfig
    from mmrag.evals.financebench_answers import answer_all
    from mmrag.evals.financebench_data import EvalConfig

    @dataclass
    class FakePipe:
        config: MMRAGConfig = field(default_factory=MMRAGConfig)
        seen: list[tuple[dict, float]] = field(default_factory=list)

        def retrieve(self, query: str, *, k: int, route: str | None = None) -> SimpleNamespace:
            self.seen.append(({"k": k, "route": route}, self.config.search.dense_weight))
            return SimpleNamespace(hits=[_hit("3M_2018_10K", 4)])

    monkeypatch.setattr(ask, "answer", lambda q, hits, cfg: SimpleNamespace(text="$1,577 million"))
    pipe = FakePipe()
    before = pipe.config.search
    q = {
        "question": "What is 3M's FY2018 capital expenditure?",
        "answer": "$1577.00",
        "doc_name": "3M_2018_10K",
        "evidence": [{"evidence_page_num": 4, "evidence_text": "capex 1,577"}],
    }
    rows = [{"type": "metrics-generated"}]
    cfg = EvalConfig(answer_config="hybrid(3:1)+routing")
    out = answer_all(pipe, rows, [q], cfg, CONFIGS["hybrid(3:1)+routing"], progress=False)  # type: ignore[arg-type]
    assert pipe.seen == [({"k": cfg.hits, "route": "filter"}, 3.0)]
    assert pipe.config.search is before
    assert out["accuracy"]["retrieved"]["all"]["accuracy"] == 1.0
    assert rows[0]["answers"]["retrieved"]["pages"] == [("3M_2018_10K", 4)]
