"""Context packing (one source per page or time range, distinct evidence, by score) and citation checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrag.answer.ask import Answer, Source, duplicate_sources, merge_hits, pack_context
from mmrag.answer.cite import check_citations, labels_in, sentences, source_uri
from mmrag.types import Hit

PDF = "/docs/PEPSICO_2023Q1_EARNINGS.pdf"
PAGE_TEXT = "PepsiCo Reports First-Quarter 2023 Results. Organic revenue growth was 14.3 percent."


def test_page_point_and_its_chunks_become_one_source() -> None:
    hits = [
        Hit("chunk-a", 0.91, "text", PDF, page=0, text="Organic revenue growth was 14.3 percent."),
        Hit("page-0", 0.80, "page", PDF, page=0, text=PAGE_TEXT),
        Hit("other", 0.85, "text", "/docs/notes.txt", text="Net revenue rose 10.2 percent in the quarter."),
        Hit("chunk-b", 0.40, "text", PDF, page=0, text="Core EPS rose 18 percent."),
        Hit("page-1", 0.30, "page", PDF, page=1, text="Guidance for the full year."),
    ]
    dropped: list[dict] = []
    context, sources = pack_context(hits, budget_chars=4000, dropped=dropped)
    # one source per (file, page), in score order; the page keeps its image and the best-scoring text
    assert [(s.hit.path, s.hit.page) for s in sources] == [(PDF, 0), ("/docs/notes.txt", None), (PDF, 1)]
    first = sources[0].hit
    assert first.id == "page-0" and first.modality == "page" and first.score == 0.91
    assert first.text == "Organic revenue growth was 14.3 percent."
    assert context.count("PEPSICO_2023Q1_EARNINGS.pdf p.1") == 1
    assert {d["id"] for d in dropped} == {"chunk-a", "chunk-b"}
    assert all(d["reason"].startswith("merged into PEPSICO_2023Q1_EARNINGS.pdf p.1") for d in dropped)
    assert duplicate_sources(sources) == 0
    merged, _ = merge_hits(hits)
    assert [h.score for h in merged] == sorted((h.score for h in merged), reverse=True)


def test_video_clip_and_its_subtitles_merge_and_repeated_text_is_dropped() -> None:
    clip = Hit("clip", 0.5, "video", "/v/show.mp4", t_start=10.0, t_end=20.0, text="")
    subs = Hit("subs", 0.7, "text", "/v/show.mp4", t_start=10.0, t_end=20.0, text="Now we whisk the eggs.")
    copy = Hit("copy", 0.6, "text", "/v/copy.txt", text="now we WHISK the eggs")
    dropped: list[dict] = []
    _, sources = pack_context([clip, subs, copy], budget_chars=2000, dropped=dropped)
    assert len(sources) == 1 and sources[0].hit.id == "clip" and sources[0].hit.text == subs.text
    reasons = {d["id"]: d["reason"] for d in dropped}
    assert reasons["subs"].startswith("merged into show.mp4 00:00:10")
    assert reasons["copy"] == "same text as [1]"
    # without merging the same clip twice counts as a duplicate
    assert duplicate_sources([Source(1, clip), Source(2, subs)]) == 1


def test_budget_drops_are_reported() -> None:
    hits = [
        Hit(str(i), 1.0 - i / 10, "text", f"/d/{i}.txt", text=f"fact {i} " + "word " * 100) for i in range(5)
    ]
    dropped: list[dict] = []
    context, sources = pack_context(hits, budget_chars=1200, dropped=dropped)
    assert 1 <= len(sources) < 5 and len(context) <= 1200 + 100
    assert [d["reason"] for d in dropped] == ["over the context budget"] * (5 - len(sources))


def test_citations_valid_invalid_and_missing() -> None:
    c = check_citations(
        "Organic revenue grew 14.3% [1]. Net revenue rose 10.2% [2, 7]. EPS rose 18%. Margins [1-3] held.",
        labels={1, 2},
    )
    assert c.cited == [1, 2] and c.invalid == [7, 3]
    assert c.uncited_sentences == ["EPS rose 18%."]
    # a refusal claims nothing
    assert check_citations("Insufficient information.", {1}).uncited_sentences == []
    assert check_citations("It grew 14.3%. [1]", {1}).uncited_sentences == []  # a trailing label counts
    assert labels_in("[1][3] and [2-4]") == [1, 3, 2, 3, 4]
    assert sentences("One [1]. Two.\nThree") == ["One [1].", "Two.", "Three"]


def test_answer_reports_citations_and_drops() -> None:
    srcs = [Source(i, Hit(str(i), 0.5, "text", f"/{i}.txt")) for i in (1, 2)]
    a = Answer("q", "Ferries [2]. Flights [9]. Trains.", srcs, dropped=[{"id": "x", "reason": "r"}])
    assert a.cited == [2] and a.invalid_labels == [9] and a.uncited_sentences == ["Trains."]
    d = a.to_dict()
    assert d["cited"] == [2] and d["invalid_labels"] == [9] and d["dropped"] == [{"id": "x", "reason": "r"}]


def test_source_links() -> None:
    assert source_uri("/docs/r.pdf", page=3) == "file:///docs/r.pdf#page=4"
    assert source_uri("/v/a.mp4", t_start=12.0, t_end=22.5) == "file:///v/a.mp4#t=12,22.5"
    assert source_uri("/d/n.txt") == "file:///d/n.txt"


def test_cli_lists_sources_as_links_and_flags_bad_labels(tmp_path: Path, monkeypatch: Any) -> None:
    import io
    import re

    from rich.console import Console

    from mmrag.cli.ask import _print_sources

    srcs = [
        Source(1, Hit("p", 0.9, "page", "/docs/r.pdf", page=3, text="t")),
        Source(2, Hit("n", 0.5, "text", "/d/n.txt")),
        Source(3, Hit("m", 0.4, "text", str(tmp_path.parent / "data" / "m.txt"))),
    ]
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    con = Console(file=out, force_terminal=True, width=200, color_system="standard")
    _print_sources(con, Answer("q", "It rose [1]. It fell [5]. Flat.", srcs))
    raw = out.getvalue()
    assert "\x1b]8;" in raw and "file:///docs/r.pdf#page=4" in raw  # OSC 8 hyperlinks to the sources
    text = re.sub(r"\x1b\]8;[^\x1b]*\x1b\\|\x1b\[[0-9;]*m", "", raw)
    assert "Sources (cited: 1)" in text and "*[1] 0.900 page  /docs/r.pdf p.4" in text
    # a source near the working directory prints relative to it (the link stays absolute)
    assert " [3] 0.400 text  ../data/m.txt" in text and f"file://{tmp_path.parent}/data/m.txt" in raw
    assert "cited without a source: [5]" in text and "1 sentence(s) cite no source" in text
