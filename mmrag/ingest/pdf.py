"""PDF pages into chunks with pypdfium2: a rendered page for the `image` vector, its text for `text`/`bm25`.

Each page gives one `page` chunk (the rendered page and its whole text) and its text again in word
windows as `text` chunks, all carrying the zero-based page number. Pages without a text layer
(scans) get their text from OCR when an OCR callable is given, read from a sharper render.

With `ingest.pdf_tables`, a page with tables also gives a `text` chunk per table (or per window of a
long one), locator `page=i;table=k` (`;chunk=j` when windowed), `meta["table"]` true: each row's
label and values on one line with the column headers (`mmrag.ingest.tables`, read with pdfplumber,
which needs no PDFium lock). The page chunk's text stays PDFium's.

PDFium is not thread-safe, not even across documents: every PDFium call here runs under
`PDFIUM_LOCK`, taken page by page (never across a `yield`), so several indexing workers can read
PDFs at once, their PDFium work one call at a time, their OCR and everything else in parallel.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.ingest.tables import PdfTables, might_have_table, table_windows
from mmrag.ingest.text import word_windows
from mmrag.types import Chunk, IngestError, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import IngestConfig

OCR_PAGE_PX = 1600
"""Longest side of the render that OCR reads (about 140 dpi for a letter page)."""

PDFIUM_LOCK = threading.RLock()
"""Held around every PDFium call of this process (pypdfium2's rule for threads)."""

_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def _pdfium() -> Any:
    try:
        import pypdfium2
    except ImportError as e:
        raise MMRAGError("reading PDFs needs pypdfium2: pip install pypdfium2") from e
    return pypdfium2


def clean_page_text(text: str) -> str:
    """Normalise PDFium's text: `\\n` line ends, hyphens back in, private-use glyphs dropped.

    PDFium writes U+FFFE where a hyphenated word was broken across lines ("cloud\\ufffebased") and
    private-use code points for symbol-font glyphs (bullets).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "-").replace("\x00", "")
    text = _PRIVATE_USE.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _has_text_layer(text: str) -> bool:
    # page numbers and stray marks alone do not make a text layer
    return any(ch.isalpha() for ch in text)


def _render(page: Any, longest_side: int) -> Image.Image:
    """The page as RGB, `longest_side` px; call under `PDFIUM_LOCK`.

    The image is a copy and the bitmap is closed here: a bitmap left to the garbage collector would
    be freed by a PDFium call from whatever thread collects it, outside the lock.
    """
    width, height = page.get_size()
    scale = longest_side / max(width, height, 1.0)
    bitmap = page.render(scale=scale)
    try:
        img = bitmap.to_pil()
        return img.convert("RGB") if img.mode != "RGB" else img.copy()
    finally:
        bitmap.close()


def render_page(path: Path, i: int, longest_side: int) -> Image.Image:
    """Page `i` (zero-based) of the PDF at `path` as RGB, `longest_side` px, rendered under `PDFIUM_LOCK`.

    For showing a page again after indexing (a page hit's picture); indexing renders through the same
    `_render`.

    Raises:
        IngestError: not a PDF, corrupt, encrypted, or no page `i`.
    """
    pdfium = _pdfium()
    with PDFIUM_LOCK:
        pdf = _open(pdfium, path)
        try:
            if not 0 <= i < len(pdf):
                raise IngestError(f"PDF has no page {i}")
            page = pdf[i]
            try:
                return _render(page, longest_side)
            finally:
                page.close()
        except pdfium.PdfiumError as e:
            raise IngestError(f"page {i} cannot be rendered: {e}") from e
        finally:
            pdf.close()


def _open(pdfium: Any, path: Path) -> Any:
    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        if "password" in str(e).lower():
            raise IngestError("encrypted PDF: it needs a password to open") from e
        raise IngestError(f"not a PDF or corrupt: {e}") from e


def iter_pdf_chunks(
    path: Path, cfg: IngestConfig, ocr: Callable[[Image.Image], str] | None = None
) -> Iterator[Chunk]:
    """Per page: one `page` chunk (render + whole text), then its `text` chunks (word windows), then,
    with `cfg.pdf_tables`, its tables' `text` chunks.

    Locators are `page=i`, `page=i;chunk=j` and `page=i;table=k[;chunk=j]` (zero-based). `meta`
    holds `pages` (the page count) and the document `title` when the PDF has one; table chunks'
    `meta` has `table: True` too.

    Raises:
        IngestError: not a PDF, corrupt, encrypted, no pages, or more than `cfg.max_pdf_pages` pages.
        MMRAGError: `cfg.pdf_tables` on and pdfplumber not installed.
    """
    pdfium = _pdfium()
    with PDFIUM_LOCK:
        pdf = _open(pdfium, path)
    try:
        with PDFIUM_LOCK:
            n_pages = len(pdf)
            try:
                title = (pdf.get_metadata_dict().get("Title") or "").strip()
            except pdfium.PdfiumError:
                title = ""
        if n_pages == 0:
            raise IngestError("PDF has no pages")
        if n_pages > cfg.max_pdf_pages:
            raise IngestError(f"PDF has {n_pages} pages, over the {cfg.max_pdf_pages} limit (max_pdf_pages)")
        meta: dict[str, Any] = {"pages": n_pages}
        if title:
            meta["title"] = title
        tables = PdfTables(path) if cfg.pdf_tables else None  # opened once for the whole file
        try:
            for i in range(n_pages):
                yield from _page_chunks(pdfium, pdf, i, str(path), cfg, ocr, meta, tables)
        finally:
            if tables is not None:
                tables.close()
    finally:
        with PDFIUM_LOCK:
            pdf.close()


def _page_chunks(
    pdfium: Any,
    pdf: Any,
    i: int,
    path: str,
    cfg: IngestConfig,
    ocr: Callable[[Image.Image], str] | None,
    meta: dict[str, Any],
    tables: PdfTables | None = None,
) -> Iterator[Chunk]:
    with PDFIUM_LOCK:
        try:
            page = pdf[i]
        except pdfium.PdfiumError as e:
            raise IngestError(f"page {i} cannot be loaded: {e}") from e
        try:
            textpage = page.get_textpage()
            try:
                text = clean_page_text(textpage.get_text_range())
            finally:
                textpage.close()
            image = _render(page, cfg.page_image_px)
            scan = _render(page, OCR_PAGE_PX) if ocr is not None and not _has_text_layer(text) else None
        except pdfium.PdfiumError as e:
            raise IngestError(f"page {i} cannot be read: {e}") from e
        finally:
            page.close()
    if scan is not None and ocr is not None:
        text = ocr(scan).strip()  # outside the lock: OCR takes a second, other PDFs render meanwhile
    windows = word_windows(text, cfg.chunk_words, cfg.chunk_overlap)
    # The page's dense text vector reads its first window (the embedder would truncate the page
    # there anyway); it is the same string as text chunk 0, so it is embedded once.
    page_meta = {**meta, "embed_text": windows[0]} if windows else dict(meta)
    yield Chunk(
        modality="page",
        path=path,
        locator=f"page={i}",
        text=text or None,
        images=[image],
        page=i,
        meta=page_meta,
    )
    for j, window in enumerate(windows):
        yield Chunk(
            modality="text", path=path, locator=f"page={i};chunk={j}", text=window, page=i, meta=dict(meta)
        )
    if tables is None or scan is not None or not might_have_table(text):
        return
    for k, table in enumerate(tables.page(i)):  # outside the lock: pdfplumber reads the file itself
        parts = table_windows(table, cfg.chunk_words)
        for j, part in enumerate(parts):
            where = f"page={i};table={k}" + (f";chunk={j}" if len(parts) > 1 else "")
            yield Chunk(
                modality="text", path=path, locator=where, text=part, page=i, meta={**meta, "table": True}
            )
