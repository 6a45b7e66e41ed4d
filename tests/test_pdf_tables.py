"""PDF tables (`ingest.pdf_tables`): each row's label and values on one line with the column headers.

The PDFs are written here with fpdf2 the way many financial statements are drawn: no ruling lines,
and the content stream holds every row label first, then each value column top to bottom, so
PDFium's plain text has the labels in one run and the numbers in others. The tests show that
first, then that the table chunks put them back together.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mmrag.config import IngestConfig, MMRAGConfig
from mmrag.ingest import iter_chunks
from mmrag.ingest.pdf import clean_page_text
from mmrag.ingest.tables import PdfTables, might_have_table, table_windows
from mmrag.ingest.text import word_windows
from mmrag.types import Chunk, IngestError, MMRAGError

pytest.importorskip("pdfplumber", reason="PDF tables are read with pdfplumber (pip install 'mmrag[tables]')")

ROWS = [
    ("Net revenue", "17,846", "16,200"),
    ("Cost of sales", "7,988", "7,433"),
    ("Gross profit", "9,858", "8,767"),
    ("Selling, general and administrative expenses", "7,229", "6,580"),
    ("Operating profit", "2,629", "(1,813)"),
]
PROSE = (
    "Net revenue grew 10.2 percent to 17,846 million dollars in 2023, up from 16,200 million in 2022. "
    "Operating profit was 2,629 million, and the company raised its guidance for 2023 by 1 point. "
) * 4


def _statement(pdf: Any, rows: Sequence[tuple[str, ...]], heads: list[str], span: str, top: float) -> None:
    """A table drawn labels first, then each value column top to bottom (right-aligned numbers)."""
    right = [400.0 + 90 * j for j in range(len(heads))]
    pdf.set_font("Helvetica", size=10)
    pdf.text((right[0] - 25 + right[-1]) / 2 - pdf.get_string_width(span) / 2, top, span)  # over the values
    for x, head in zip(right, heads, strict=True):
        pdf.text(x - pdf.get_string_width(head), top + 14, head)
    for i, (label, *_) in enumerate(rows):
        pdf.text(54, top + 32 + 15 * i, label)
    for j, x in enumerate(right):
        for i, row in enumerate(rows):
            pdf.text(x - pdf.get_string_width(row[j + 1]), top + 32 + 15 * i, row[j + 1])


def make_statement_pdf(path: Path, rows: Sequence[tuple[str, ...]] = ROWS, prose_page: bool = True) -> Path:
    """Page 0: a statement (title, "Year ended December 31," over 2023 and 2022); page 1: prose."""
    fpdf = pytest.importorskip(
        "fpdf", reason="PDF tests write their PDFs with fpdf2 (pip install 'mmrag[dev]')"
    )
    pdf = fpdf.FPDF(unit="pt", format="letter")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.text(200, 60, "Condensed Consolidated Statement of Income")
    _statement(pdf, rows, ["2023", "2022"], "Year ended December 31,", 100)
    if prose_page:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 15, PROSE)
    pdf.output(str(path))
    return path


def _tables(chunks: list[Chunk]) -> list[Chunk]:
    return [c for c in chunks if c.meta.get("table")]


def _text(c: Chunk) -> str:
    return c.text or ""


def test_pdfium_text_separates_labels_from_values(tmp_path: Path) -> None:
    import pypdfium2

    path = make_statement_pdf(tmp_path / "statement.pdf")
    doc = pypdfium2.PdfDocument(str(path))
    try:
        text = clean_page_text(doc[0].get_textpage().get_text_range())
    finally:
        doc.close()
    lines = text.splitlines()
    # the problem: no line holds a label with its values, and the labels come in one run
    assert not [ln for ln in lines if "Net revenue" in ln and "17,846" in ln]
    assert not [ln for ln in lines if "Operating profit" in ln and "2,629" in ln]
    assert text.index("Operating profit") < text.index("17,846")
    assert might_have_table(text)


def test_table_rows_keep_label_values_and_headers(tmp_path: Path) -> None:
    path = make_statement_pdf(tmp_path / "statement.pdf")
    chunks = list(iter_chunks(path, IngestConfig(pdf_tables=True)))
    [table] = _tables(chunks)
    assert (table.modality, table.locator, table.page) == ("text", "page=0;table=0", 0)
    assert table.meta["table"] is True and table.meta["pages"] == 2
    lines = _text(table).splitlines()
    assert lines[0] == "Condensed Consolidated Statement of Income Year ended December 31, | 2023 | 2022"
    assert lines[1:] == [
        "Net revenue | 2023: 17,846 | 2022: 16,200",
        "Cost of sales | 2023: 7,988 | 2022: 7,433",
        "Gross profit | 2023: 9,858 | 2022: 8,767",
        "Selling, general and administrative expenses | 2023: 7,229 | 2022: 6,580",
        "Operating profit | 2023: 2,629 | 2022: (1,813)",
    ]
    # the page chunk still shows PDFium's text, and table chunks come after the page's own chunks
    page = next(c for c in chunks if c.modality == "page" and c.page == 0)
    assert "Net revenue | 2023" not in (page.text or "")
    page0 = [c.locator for c in chunks if c.page == 0]
    assert page0 == ["page=0", "page=0;chunk=0", "page=0;table=0"]


def test_spanning_headers_name_each_column(tmp_path: Path) -> None:
    fpdf = pytest.importorskip(
        "fpdf", reason="PDF tests write their PDFs with fpdf2 (pip install 'mmrag[dev]')"
    )
    pdf = fpdf.FPDF(unit="pt", format="letter")
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    right = [330.0, 390.0, 480.0, 540.0]
    for text, x in (("Three months ended", 360.0), ("Twelve months ended", 510.0)):
        pdf.text(x - pdf.get_string_width(text) / 2 - 12, 80, text)
    for x, head in zip(right, ["2022", "2021", "2022", "2021"], strict=True):
        pdf.text(x - pdf.get_string_width(head), 94, head)
    rows = [
        ("Las Vegas Strip Resorts", "2,297", "1,806", "8,398", "4,737"),
        ("MGM China", "174", "314", "673", "1,210"),
    ]
    for i, (label, *_) in enumerate(rows):
        pdf.text(54, 112 + 14 * i, label)
    for j, x in enumerate(right):
        for i, row in enumerate(rows):
            pdf.text(x - pdf.get_string_width(row[j + 1]), 112 + 14 * i, row[j + 1])
    pdf.output(str(tmp_path / "segments.pdf"))
    [table] = _tables(list(iter_chunks(tmp_path / "segments.pdf", IngestConfig(pdf_tables=True))))
    assert "MGM China | Three months ended 2022: 174 | Three months ended 2021: 314 | " in _text(table)
    assert "Twelve months ended 2022: 673 | Twelve months ended 2021: 1,210" in _text(table)


def test_prose_pages_give_no_table_chunks(tmp_path: Path) -> None:
    fpdf = pytest.importorskip(
        "fpdf", reason="PDF tests write their PDFs with fpdf2 (pip install 'mmrag[dev]')"
    )
    pdf = fpdf.FPDF(unit="pt", format="letter")
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 15, PROSE)
    # a short list with one number a line is not a table either (one value column)
    for i, (label, value, _) in enumerate(ROWS):
        pdf.text(72, 400 + 15 * i, label)
        pdf.text(400, 400 + 15 * i, value)
    pdf.output(str(tmp_path / "prose.pdf"))
    chunks = list(iter_chunks(tmp_path / "prose.pdf", IngestConfig(pdf_tables=True)))
    assert chunks and not _tables(chunks)
    assert not [c for c in chunks if "table" in c.locator]
    # nor does the table reader itself, past the cheap gate on PDFium's text
    reader = PdfTables(tmp_path / "prose.pdf")
    try:
        assert reader.page(0) == []
    finally:
        reader.close()
    # the statement's prose page gives none either
    both = list(iter_chunks(make_statement_pdf(tmp_path / "statement.pdf"), IngestConfig(pdf_tables=True)))
    assert [c.page for c in _tables(both)] == [0]


def test_option_off_gives_todays_chunks_without_pdfplumber(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_statement_pdf(tmp_path / "statement.pdf")
    cfg = IngestConfig(page_image_px=200, chunk_words=40, chunk_overlap=5)
    with_tables = list(iter_chunks(path, IngestConfig(**{**cfg.__dict__, "pdf_tables": True})))
    monkeypatch.setitem(sys.modules, "pdfplumber", None)  # off never imports it
    off = list(iter_chunks(path, cfg))
    assert IngestConfig().pdf_tables is False
    key = [(c.modality, c.locator, c.page, c.text, c.meta) for c in off]
    assert key == [
        (c.modality, c.locator, c.page, c.text, c.meta) for c in with_tables if not c.meta.get("table")
    ]
    # today's layout: per page its page chunk, then its text in word windows
    pages = {c.page: c.text or "" for c in off if c.modality == "page"}
    want = [
        [f"page={p}"] + [f"page={p};chunk={j}" for j in range(len(word_windows(t, 40, 5)))]
        for p, t in pages.items()
    ]
    assert [c.locator for c in off] == [loc for locs in want for loc in locs]
    assert {c.locator.split(";chunk")[0] for c in _tables(with_tables)} == {"page=0;table=0"}


def test_missing_pdfplumber_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_statement_pdf(tmp_path / "statement.pdf")
    monkeypatch.setitem(sys.modules, "pdfplumber", None)  # `import pdfplumber` raises ImportError
    with pytest.raises(MMRAGError) as err:
        list(iter_chunks(path, IngestConfig(pdf_tables=True)))
    message = str(err.value)
    assert "pip install pdfplumber" in message and "mmrag[tables]" in message and "\n" not in message
    # a missing dependency stops the run; it is not reported as this file being bad
    assert not isinstance(err.value, IngestError)


def test_long_tables_are_windowed_with_their_header(tmp_path: Path) -> None:
    rows = [(f"Segment number {i} revenue", f"{1000 + i:,}", f"{900 + i:,}") for i in range(30)]
    path = make_statement_pdf(tmp_path / "long.pdf", rows=rows, prose_page=False)
    tables = _tables(list(iter_chunks(path, IngestConfig(pdf_tables=True, chunk_words=60, chunk_overlap=5))))
    assert len(tables) >= 3
    assert [c.locator for c in tables] == [f"page=0;table=0;chunk={j}" for j in range(len(tables))]
    head = "Condensed Consolidated Statement of Income Year ended December 31, | 2023 | 2022"
    assert all(_text(c).splitlines()[0] == head for c in tables)
    assert all(len(_text(c).split()) <= 60 + len(head.split()) for c in tables)
    got = {ln for c in tables for ln in _text(c).splitlines()[1:]}
    assert {f"Segment number {i} revenue | 2023: {1000 + i:,} | 2022: {900 + i:,}" for i in range(30)} <= got
    assert table_windows("A | x\nb | x: 1", 60) == ["A | x\nb | x: 1"]


def test_config_file_environment_and_cli_reach_the_option(tmp_path: Path) -> None:
    toml = tmp_path / "mmrag.toml"
    toml.write_text("[ingest]\npdf_tables = true\n")
    assert MMRAGConfig.load(config_file=toml, env={}).ingest.pdf_tables is True
    assert MMRAGConfig.load(env={"MMRAG_INGEST_PDF_TABLES": "1"}).ingest.pdf_tables is True
    assert MMRAGConfig.load(None, None, {}, **{"ingest.pdf_tables": True}).ingest.pdf_tables is True
    assert MMRAGConfig.load(env={}).ingest.pdf_tables is False
    from typer.testing import CliRunner

    from mmrag.cli import app

    out = CliRunner().invoke(app, ["index", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}).output
    assert "--pdf-tables" in out and "--no-pdf-tables" in out
