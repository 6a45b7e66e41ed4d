"""Document metadata at index time, question-aware routing, and pages as retrieval units (issue 15).

The PDFs are generated here with their metadata written in different forms (an SEC-style cover, a
press release, nothing but the file name, an 8-K with its event date), so nothing depends on any
benchmark's file names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media import make_pdf

from mmrag.ingest.meta import document_meta, from_file_name, section_heading
from mmrag.ingest.periods import find_days, find_periods
from mmrag.retrieve.route import Doc, Router, period_score
from mmrag.retrieve.units import document_scores, group_pages
from mmrag.store.base import ScoredPoint

COVER_10K = (
    "UNITED STATES SECURITIES AND EXCHANGE COMMISSION\nFORM 10-K\n"
    "ANNUAL REPORT PURSUANT TO SECTION 13 OR 15(d)\nFor the fiscal year ended December 31, 2021\n"
    "Acme Widgets, Inc.\n(Exact name of registrant as specified in its charter)\n"
    "Title of each class Trading Symbol(s) Name of each exchange on which registered\n"
    "Common Stock AWX New York Stock Exchange\n"
)
RELEASE = (
    "Globex Corporation Reports Second-Quarter 2023 Results\n"
    "SPRINGFIELD, April 25, 2023 - Globex Corporation (NASDAQ: GBX) today reported results for the "
    "second quarter 2023. Net revenue grew 9 percent.\n"
)
EIGHT_K = (
    "FORM 8-K\nCURRENT REPORT\nDate of Report (Date of earliest event reported): July 1, 2022\n"
    "Hooli Holdings plc\n(Exact name of registrant as specified in its charter)\n"
)


def test_fields_from_an_sec_cover_page() -> None:
    m = document_meta(Path("/x/report.pdf"), COVER_10K, None, None)
    assert m["doc_entity"] == "Acme Widgets, Inc"  # trailing dots are trimmed
    assert (m["doc_type"], m["doc_year"], m["doc_date"]) == ("10-K", 2021, "2021-12-31")
    assert {"Acme Widgets", "AWX"} <= set(m["doc_aliases"])
    assert m["doc_source"] == "report.pdf"


def test_fields_from_a_press_release_and_an_8k() -> None:
    m = document_meta(Path("/x/news.pdf"), RELEASE, {"Title": "Globex Q2 2023 earnings release"}, None)
    assert (m["doc_entity"], m["doc_type"], m["doc_year"], m["doc_quarter"]) == (
        "Globex Corporation",
        "earnings release",
        2023,
        2,
    )
    assert "GBX" in m["doc_aliases"] and m["doc_title"] == "Globex Q2 2023 earnings release"
    k8 = document_meta(Path("/x/filing.pdf"), EIGHT_K, None, None)
    assert (k8["doc_type"], k8["doc_date"], k8["doc_entity"]) == ("8-K", "2022-07-01", "Hooli Holdings plc")


@pytest.mark.parametrize(
    ("name", "entity", "year", "quarter", "kind"),
    [
        ("ACME_2022_10K.pdf", "ACME", 2022, None, "10-K"),
        ("initech fy22 annual report.pdf", "initech", 2022, None, "annual report"),
        ("Globex-2023Q2-10-Q.pdf", "Globex", 2023, 2, "10-Q"),
        ("Umbrella Q3 FY2021 earnings.pdf", "Umbrella", 2021, 3, "earnings release"),
    ],
)
def test_fields_from_file_names(name: str, entity: str, year: int, quarter: int | None, kind: str) -> None:
    f = from_file_name(Path(name))
    assert (f["entity"], f["year"], f.get("quarter"), f["type"]) == (entity, year, quarter, kind)


def test_file_name_with_a_day_and_text_without_fields() -> None:
    m = document_meta(Path("/x/Hooli_8K_dated-2022-07-01.pdf"), "Minutes of the meeting.", None, None)
    assert (m["doc_entity"], m["doc_type"], m["doc_date"]) == ("Hooli", "8-K", "2022-07-01")
    assert m["doc_title"] == "Hooli 8-K 2022-07-01"  # made up from the fields when the PDF has none


def test_days_and_periods_in_several_forms() -> None:
    assert find_days("dated 1st July 2022, or Oct. 22 2023, or 2021-03-04") == [
        "2022-07-01",
        "2023-10-22",
        "2021-03-04",
    ]
    p = find_periods("Compare FY22 with fiscal 2023, Q2 of FY2024, Q3'2021 and the 2020 annual report")
    assert p.years == {2020, 2021, 2022, 2023, 2024}
    assert p.quarters == {(2024, 2), (2021, 3)}
    assert p.types == ["annual report"]


def test_section_heading() -> None:
    assert section_heading("ACME INC.\nCONSOLIDATED STATEMENTS OF INCOME\n(In millions)") == "ACME INC"
    assert section_heading("12\nConsolidated Balance Sheets\nAssets 1 2") == "Consolidated Balance Sheets"
    assert section_heading("the revenue grew by 4 percent in the year") is None


DOCS = [
    Doc("/c/acme-2021.pdf", "Acme Widgets, Inc.", ["Acme Widgets", "AWX", "ACME"], "10-K", 2021),
    Doc("/c/acme-2022.pdf", "Acme Widgets, Inc.", ["Acme Widgets", "AWX"], "10-K", 2022),
    Doc("/c/acme-q2.pdf", "ACME", ["ACME"], "10-Q", 2023, 2),
    Doc("/c/jj.pdf", "Johnson & Johnson", ["JNJ"], "earnings release", 2022, 4),
    Doc("/c/hooli-8k.pdf", "Hooli plc", ["Hooli"], "8-K", 2022, None, "2022-07-01"),
    Doc("/c/hooli-10k.pdf", "Hooli plc", ["Hooli"], "10-K", 2022),
]


def test_routing_by_alias_ticker_and_period() -> None:
    r = Router(DOCS)
    # "Acme Widgets" and "ACME" are one entity: the file name's form joins the registrant's
    assert r.read("What was Acme Widgets' FY22 revenue?").groups == [["/c/acme-2022.pdf"]]
    assert r.read("In fiscal 2021, how much did AWX spend?").groups == [["/c/acme-2021.pdf"]]
    assert r.read("Acme's cash in Q2 of FY2023?").groups == [["/c/acme-q2.pdf"]]
    assert r.read("the 2021 annual report of Acme Widgets").groups == [["/c/acme-2021.pdf"]]
    # a ticker written with mixed capitals ("JnJ") names the company; "jnj" in lower case would not
    assert r.read("How did JnJ's sales grow in FY2022?").groups == [["/c/jj.pdf"]]
    assert not r.read("how did jnj grow?").groups
    # an event document by its day, a filing by its type
    assert r.read("What did Hooli's 8-K dated 1st July 2022 announce?").groups == [["/c/hooli-8k.pdf"]]
    assert r.read("Hooli's 10-K: who audits it?").groups == [["/c/hooli-10k.pdf"]]
    # no period named: every document of the entity
    assert sorted(r.read("What industry is Hooli in?").groups[0]) == ["/c/hooli-10k.pdf", "/c/hooli-8k.pdf"]


def test_routing_with_no_match_and_with_conflicting_matches() -> None:
    r = Router(DOCS)
    none = r.read("What was Initech's revenue in FY2022?")
    assert not none and none.record() == {}
    # "Acme" and "Hooli" both named: one group each, in the order the question names them
    both = r.read("Did Hooli or Acme Widgets earn more in FY2022?")
    assert both.groups == [["/c/hooli-10k.pdf"], ["/c/acme-2022.pdf"]]
    assert both.record()["entity"] == ["Hooli plc", "Acme Widgets, Inc."]
    # a year that only a later annual report covers as a comparative still routes there
    assert period_score(DOCS[1], find_periods("in 2020")) == 0.5
    # a quarter with no entity named routes to the few documents of exactly that quarter
    assert r.read("Was there a drop in cash in Q2 of FY2023?").groups == [["/c/acme-q2.pdf"]]


def _pt(i: str, path: str, page: int | None, score: float, modality: str = "text") -> ScoredPoint:
    return ScoredPoint(i, score, {"path": path, "page": page, "modality": modality})


def test_pages_ranked_by_their_best_points() -> None:
    pts = [
        _pt("a", "d1", 3, 0.50),  # one lucky window on page 3
        _pt("b", "d1", 7, 0.40),
        _pt("c", "d1", 7, 0.36, "page"),  # page 7 matches twice: 0.40 + 0.5 * 0.36 = 0.58
        _pt("d", "d2", 1, 0.30),
        _pt("e", "d2", None, 0.20),  # no page: a unit of its own
    ]
    pages = group_pages(pts)
    assert [(p.payload["path"], p.payload["page"]) for p in pages] == [
        ("d1", 7),
        ("d1", 3),
        ("d2", 1),
        ("d2", None),
    ]
    assert pages[0].id == "c" and pages[0].score == pytest.approx(0.58)  # the page point represents it
    assert document_scores(pages)[0] == ("d1", pytest.approx(0.58 + 0.5 * 0.50))


@pytest.fixture(scope="module")
def filings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three generated filings (one with a sidecar), indexed with the offline text profile."""
    from mmrag.pipeline import Pipeline

    root = tmp_path_factory.mktemp("filings")
    docs = root / "docs"
    docs.mkdir()
    make_pdf(docs / "report.pdf", [COVER_10K, "Revenue was 120 million dollars in fiscal 2021."])
    make_pdf(docs / "globex_2023Q2_earnings.pdf", [RELEASE, "Revenue was 75 million dollars this quarter."])
    make_pdf(docs / "scan-0042.pdf", ["Revenue was 9 million dollars.", "Operating costs were flat."])
    side = {"entity": "Umbrella Corp", "aliases": "UMB;Umbrella", "type": "10-K", "year": 2020}
    (docs / "scan-0042.pdf.meta.json").write_text(json.dumps(side))
    overrides = {"encoders.image": None, "encoders.ocr": False, "ingest.contextual": True}
    with Pipeline.from_config(profile="offline", index=str(root / "idx"), **overrides) as p:
        report = p.index([docs])
        assert report.ok and report.files_indexed == 3  # the sidecar is not indexed as a file
    return root / "idx"


def test_sidecar_overrides_and_routing_through_the_pipeline(filings: Path) -> None:
    from mmrag.pipeline import Pipeline

    with Pipeline.load(filings) as p:
        q = "What was Umbrella's revenue in FY2020?"
        plain = p.retrieve(q, k=3)
        routed = p.retrieve(q, k=3, route="filter")
        assert routed.filters["entity"] == ["Umbrella Corp"]
        assert routed.hits[0].path.endswith("scan-0042.pdf")
        assert {h.path for h in routed.hits} == {h.path for h in plain.hits} or len(routed.hits) == 3
        pl = routed.hits[0].payload
        assert (pl["doc_entity"], pl["doc_year"], pl["doc_type"]) == ("Umbrella Corp", 2020, "10-K")
        assert "Umbrella" in pl["doc_aliases"] and "context" not in pl
        assert not (routed.hits[0].text or "").startswith("Umbrella")  # the shown text stays clean
        boosted = p.retrieve("How much revenue did GBX report?", k=3, route="boost")
        assert boosted.filters["entity"] == ["Globex Corporation"]
        assert boosted.hits[0].path.endswith("globex_2023Q2_earnings.pdf")
        pages = p.retrieve("revenue", k=5, group="page")
        keys = [(h.path, h.page) for h in pages.hits]
        assert len(keys) == len(set(keys))  # each page once
        assert p.retrieve("Who won the 1998 World Cup?", k=2, route="filter").filters == {}


def test_evidence_recall_and_completeness_by_hand() -> None:
    from mmrag.evals.multihop_data import evidence_metrics

    a, b, c = "Epic sued Google.", "Apple paid Google.", "FTX went to trial."
    ranked = ["noise", a, "noise", "noise", "noise", b + " more", *["noise"] * 6, c]  # c at rank 13
    m = evidence_metrics(ranked, [a, b, c, a])  # a repeated gold fact counts once
    # top 4 holds a (1 of 3); top 10 holds a and b (2 of 3); c is past rank 10: not complete
    assert m == {"recall@4": pytest.approx(1 / 3), "recall@10": pytest.approx(2 / 3), "complete@10": 0.0}
    both = evidence_metrics(["x", "Epic  sued\nGoogle. Apple paid Google."], [a, b])  # official spacing rule
    assert both == {"recall@4": 1.0, "recall@10": 1.0, "complete@10": 1.0}
    assert evidence_metrics(["x"], []) == {"recall@4": 0.0, "recall@10": 0.0, "complete@10": 0.0}


def test_weighted_fusion_by_hand() -> None:
    from mmrag.retrieve.hybrid import fuse

    dense = [_pt("a", "d", 0, 0.9), _pt("b", "d", 1, 0.8)]
    bm25 = [_pt("b", "d", 1, 7.0), _pt("c", "d", 2, 5.0)]
    # RRF k=2, dense 3:1: a = 3/3 = 1.0; b = 3/4 + 1/3 = 1.083; c = 1/4
    out = fuse([dense, bm25], "rrf", 3, 2, weights=[3.0, 1.0])
    assert [p.id for p in out] == ["b", "a", "c"]
    assert [p.score for p in out] == pytest.approx([3 / 4 + 1 / 3, 1.0, 1 / 4])
    assert [p.id for p in fuse([dense, bm25], "rrf", 3, 2)] == ["b", "a", "c"]  # 1:1, b = 1/4 + 1/3


def test_llama_index_retriever_routes(filings: Path) -> None:
    pytest.importorskip("llama_index.core", reason="the llama-index connector needs llama-index-core")
    from llama_index.core.schema import QueryBundle

    from mmrag.connectors.llama_index import MMRAGRetriever

    with MMRAGRetriever.from_index(filings, k=2, route="filter", group="page") as r:
        nodes = r.retrieve(QueryBundle("What was Umbrella's revenue in FY2020?"))
        assert nodes and nodes[0].node.metadata["path"].endswith("scan-0042.pdf")
        keys = [(n.node.metadata["path"], n.node.metadata.get("page")) for n in nodes]
        assert len(keys) == len(set(keys))


def test_long_video_halves_are_two_seeds() -> None:
    from typer.testing import CliRunner

    from mmrag.cli import app
    from mmrag.evals.long_video_config import SPLIT_SEEDS, split_of_seed

    assert SPLIT_SEEDS["dev"] != SPLIT_SEEDS["test"]
    assert [split_of_seed(s) for s in (0, 1, 7)] == ["dev", "test", "seed 7"]
    r = CliRunner().invoke(app, ["eval", "long-video", "--split", "train"])
    assert r.exit_code != 0 and "unknown split" in r.output
