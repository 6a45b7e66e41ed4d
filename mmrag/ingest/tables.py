"""Tables in PDF pages as text lines that keep each row's label and values with the column headers.

PDFium's plain text gives a table in content-stream order: a row's label may come out far from its
values (a PDF may draw every label first, then each column), and a wrapped column header ("December
31," / "2022") is never next to its numbers. Here a table becomes a header line (title text, column
headers), then one line per row: `Net revenue | 2023: 17,846 | 2022: 16,200`. Word boxes come from
pdfplumber (MIT, maintained, pure Python on pdfminer.six: no `PDFIUM_LOCK`); its table finder is not
used, as on unruled statements its "text" strategies cut words apart ("Ne" | "t Revenue"). Rows are
lines of words, values the gap-separated numbers ending a line, columns the x ranges the rows'
values share, headers the lines above, each piece given to the columns under it. A table needs
`MIN_ROWS` labelled rows and `MIN_COLUMNS` columns of numbers, which prose does not have.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.ingest.text import word_windows
from mmrag.types import MMRAGError

MIN_ROWS = 2  # labelled rows with values a table needs
MIN_COLUMNS = 2  # value columns holding numbers a table needs
MAX_HEADER_LINES = 10  # lines above a table's first row read as its title and column headers

_NUMBER = re.compile(
    r"^[(\[~≈<>+\-−]?[$€£¥]?[(\-−+]?\d[\d,]*(?:\.\d+)?[%xBMKbmk]?\)?%?\)?\*?$"
    r"|^\d{1,2}/\d{1,2}/\d{2,4}$"
)
_NIL = {"—", "–", "-", "−", "n/m", "nm", "NM", "N/A", "n/a", "NA", "*", "**"}
_HEADING_VALUE = re.compile(r"^(?:(?:19|20)\d\d|\d{1,2}/\d{1,2}/\d{2,4})$")  # a year or a date
_CURRENCY = {"$", "€", "£", "¥"}
_SUFFIX = {")", "%", ")%", "%)", "x"}
_CONNECTOR = {"–", "/", "to"}
_Span = tuple[float, float]
_Below = tuple[float, float, set[int] | None]  # a header piece's x range and columns (None: the table's)
_NOTE = re.compile(r"\(\w{1,2}\)\s|\*|_{3}")  # a footnote, or the rule above the notes
_FORMAT = re.compile("[\u00ad\u200b-\u200f\u2060\ufeff\ufffe]")


def might_have_table(text: str) -> bool:
    """Whether page text (PDFium's) has three lines that end in two values or hold only numbers: a
    cheap gate (on FinanceBench filings it passes about half the pages, losing no table found without it)."""
    rows = 0
    for toks in (line.split() for line in text.splitlines()):
        ends = len(toks) >= 2 and _is_value(toks[-1]) and _is_value(toks[-2])
        rows += any(map(_has_digit, toks[-3:])) and (ends or all(map(_is_value, toks)))
    return rows >= 3


def _is_value(token: str) -> bool:
    return bool(_NUMBER.match(token)) or token in _NIL or token in _CURRENCY or token in _SUFFIX


@dataclass
class _Word:
    x0: float
    x1: float
    top: float
    bottom: float
    text: str


@dataclass
class _Line:
    top: float
    bottom: float
    words: list[_Word]
    segments: list[list[_Word]] = field(default_factory=list)
    label: str = ""
    label_x1: float = 0.0
    cells: list[_Word] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def heading(self) -> bool:  # values that are all years or dates: column headers
        return bool(self.cells) and all(_HEADING_VALUE.match(c.text) for c in self.cells)

    @property
    def row(self) -> bool:  # a labelled row of values
        return bool(self.cells and self.label) and not self.heading


def _lines(words: list[_Word]) -> list[_Line]:
    """Words into lines: a word joins the line whose first word has its middle within half a height."""
    lines: list[_Line] = []
    for w in sorted(words, key=lambda w: (w.top, w.x0)):
        for line in reversed(lines[-3:]):
            off = abs(line.top + line.bottom - w.top - w.bottom) / 2  # between the boxes' middles
            if off < 0.5 * min(w.bottom - w.top, line.bottom - line.top):
                line.words.append(w)
                break
        else:
            lines.append(_Line(w.top, w.bottom, [w]))
    for line in lines:
        line.words.sort(key=lambda w: w.x0)
        _parse(line)
    return lines


def _parse(line: _Line) -> None:
    """Split a line at wide gaps; the value segments at its end become cells, the rest its label."""
    heights = [w.bottom - w.top for w in line.words]
    gap = max(3.0, 0.55 * statistics.median(heights))
    segs: list[list[_Word]] = [[line.words[0]]]
    for prev, w in zip(line.words, line.words[1:], strict=False):
        if w.x0 - prev.x1 > gap:
            segs.append([w])
        else:
            segs[-1].append(w)
    line.segments = segs
    k = len(segs)
    while k > 0 and all(_is_value(w.text) or w.text in _CONNECTOR for w in segs[k - 1]):
        k -= 1
    line.cells = _cells([w for s in segs[k:] for w in s], gap)
    label = [w for s in segs[:k] for w in s]
    line.label = " ".join(w.text for w in label)
    line.label_x1 = label[-1].x1 if label else 0.0


def _cells(words: list[_Word], gap: float) -> list[_Word]:
    """Value words into cells: `$` dropped (its x kept), `)` and `%` kept on their number, ranges joined."""
    cells: list[_Word] = []
    prev: _Word | None = None
    for w in words:
        near = prev is not None and w.x0 - prev.x1 <= gap
        if prev is not None and (prev.text in _CURRENCY or (near and _CONNECTOR & {w.text, prev.text})):
            cells[-1].text, cells[-1].x1 = f"{cells[-1].text} {w.text}".strip(), w.x1
        elif prev is not None and near and w.text in _SUFFIX:
            cells[-1].text, cells[-1].x1 = cells[-1].text + w.text, w.x1
        else:
            cells.append(_Word(w.x0, w.x1, w.top, w.bottom, "" if w.text in _CURRENCY else w.text))
        prev = w
    return [c for c in cells if _has_digit(c.text) or c.text in _NIL]


def _has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def _is_prose(line: _Line, width: float) -> bool:
    """A sentence's line: twelve words unbroken by a wide gap, or seven over most of the page."""
    seg = max(line.segments, key=len)
    return not line.cells and (len(seg) >= 12 or (len(seg) >= 7 and seg[-1].x1 - seg[0].x0 > 0.55 * width))


def _columns(rows: list[_Line]) -> list[_Span]:
    """The x ranges that the rows' cells share (overlapping cells merged), left to right."""
    cols: list[list[float]] = []
    for x0, x1 in sorted((c.x0, c.x1) for r in rows for c in r.cells):
        if cols and x0 <= cols[-1][1] + 0.5:
            cols[-1][1] = max(cols[-1][1], x1)
        else:
            cols.append([x0, x1])
    return [(a, b) for a, b in cols]


def _column_of(x0: float, x1: float, cols: list[_Span]) -> int:
    """The column a box overlaps most, or else the nearest by centre."""
    over = [max(min(x1, b) - max(x0, a), 0) for a, b in cols]
    return max(range(len(cols)), key=lambda j: (over[j], -abs(cols[j][0] + cols[j][1] - x0 - x1)))


def _header_pieces(seg: list[_Word], cols: list[_Span]) -> list[tuple[str, float, float, set[int]]]:
    """A header segment as pieces (text, x range, columns under it: none if over none), split where a
    wide gap parts two columns."""
    gaps = [b.x0 - a.x1 for a, b in zip(seg, seg[1:], strict=False)]
    j = max(range(len(gaps)), key=lambda i: gaps[i], default=0)
    if len(gaps) > 1 and gaps[j] > 1.6 * statistics.median(gaps[:j] + gaps[j + 1 :]) + 0.5:
        if _column_of(seg[j].x0, seg[j].x1, cols) != _column_of(seg[j + 1].x0, seg[j + 1].x1, cols):
            return _header_pieces(seg[: j + 1], cols) + _header_pieces(seg[j + 1 :], cols)
    x0, x1 = seg[0].x0, seg[-1].x1
    under = {j for j, (a, b) in enumerate(cols) if min(x1, b) - max(x0, a) >= 0.3 * min(x1 - x0, b - a)}
    for j, ((a, c), (d, b)) in enumerate(zip(cols, cols[1:], strict=False)):  # centred across a gap
        if c <= (x0 + x1) / 2 <= d and abs(x0 + x1 - a - b) < 0.3 * (b - a):
            under |= {j, j + 1}
    near = _column_of(x0, x1, cols)
    if not under and max(cols[near][0] - x1, x0 - cols[near][1]) < 10:
        under = {near}
    return [(" ".join(w.text for w in seg), x0, x1, under)]


def _headers(header: list[_Line], cols: list[_Span], label_x1: float) -> tuple[list[str], list[str]]:
    """The table's title text and its columns' names, from the header lines above its rows, read bottom
    up. A piece over pieces of the line below (centred within them) takes their columns: a spanning
    header ("Three months ended" over "December 31, 2022" and "... 2021"). The only piece of its line
    is the whole table's (its title) when it sits over none of the pieces below, or is centred over
    the columns and over all of them or much wider than what it sits over ("Year Ended December 31,"
    over "2017 2018 2019"). Text over the labels is title too."""
    values_x0, values_x1 = cols[0][0], cols[-1][1]
    widest = max(b - a for a, b in cols)
    heads: list[list[str]] = [[] for _ in cols]
    title: list[str] = []
    below: list[_Below] = []
    for line in reversed(header):
        left = [s for s in line.segments if s[0].x0 <= label_x1 and (s[0].x0 + s[-1].x1) / 2 < values_x0]
        raw = [p for s in line.segments if s not in left for p in _header_pieces(s, cols)]
        if len(raw) == len(cols) and [sorted(u) for *_, u in raw] != [[j] for j in range(len(cols))]:
            raw = [(t, x0, x1, {j}) for j, (t, x0, x1, _) in enumerate(raw)]  # one a column, in order
        pieces: list[tuple[str, float, float, set[int] | None]] = []
        for text, x0, x1, direct in raw:
            over = [(a, b, js) for a, b, js in below if min(x1, b) - max(x0, a) >= 3]
            sits = bool(over) and over[0][0] - 2 <= (x0 + x1) / 2 <= over[-1][1] + 2
            under: set[int] | None = direct or None
            if sits and (len(raw) == 1 or all(js is not None for *_, js in over)):
                wide = any(js is None for *_, js in over)
                under = None if wide else set().union(*(js or () for *_, js in over))
                if under is not None and len(over) == 1 and x1 - x0 >= 2 * (over[0][1] - over[0][0]):
                    others = [(a, b) for _, a, b, _ in raw if a != x0]
                    under |= _centred_over(x0, x1, below.index(over[0]), below, others)
            elif below and len(raw) == 1:
                under = None
            if len(raw) == 1 and under is not None:
                centred = abs((x0 + x1) - (values_x0 + values_x1)) < 0.2 * (values_x1 - values_x0)
                wider = 2 * max(b - a for a, b, _ in over) if sits else 1.5 * widest
                if len(under) == len(cols) or (centred and (len(under) >= 2 or x1 - x0 >= wider)):
                    under = None
            pieces.append((text, x0, x1, under))
        words = [(s[0].x0, " ".join(w.text for w in s)) for s in left]
        words += [(x0, text) for text, x0, _, under in pieces if under is None]
        title[:0] = [t for _, t in sorted(words)]
        for text, _, _, under in pieces:
            for j in under or ():
                heads[j].insert(0, text)
        below = [(x0, x1, under) for _, x0, x1, under in pieces] or below
    return title, [" ".join(h) for h in heads]


def _centred_over(x0: float, x1: float, k: int, below: list[_Below], others: list[_Span]) -> set[int]:
    """The columns of the pieces around `below[k]` that a wide header is centred over as a group ("Year
    ended December 31," over "2020 2019 2018" overlaps only "2019"), none under `others` of its line."""
    taken: set[int] = set()
    for n in range(1, min(k, len(below) - 1 - k) + 1):
        group = below[k - n : k + n + 1]
        a, b = group[0][0], group[-1][1]
        off = abs(x0 + x1 - a - b) > 0.2 * (b - a)
        if off or any(js is None for *_, js in group) or any(min(b, d) > max(a, c) for c, d in others):
            break
        taken = set().union(*(js or () for *_, js in group))
    return taken


def _table(header: list[_Line], body: list[_Line]) -> list[str] | None:
    """One table's text lines (header line first), or None when the block is not a table."""
    rows = [r for r in body if r.row]
    cols = _columns(rows)
    numeric = {_column_of(c.x0, c.x1, cols) for r in rows for c in r.cells if _has_digit(c.text)}
    if len(rows) < MIN_ROWS or len(numeric) < MIN_COLUMNS:
        return None
    title, names = _headers(header, cols, max(r.label_x1 for r in rows))
    heads = [n or f"column {j + 1}" for j, n in enumerate(names)] if any(names) else []
    out = [" | ".join([" ".join(title) or "Table", *heads])]
    pending = ""  # text since the last row: a section title, or the start of a wrapped label
    for line in body:
        label = line.label if line.cells else line.text
        if pending and ((line.cells and not label) or label[:1].islower() or _continues(pending)):
            label = _join(pending, label)
        elif pending:
            out.append(pending)
        pending = ""
        if not line.cells:
            pending = label
            continue
        values: dict[int, list[str]] = {}
        for c in line.cells:
            values.setdefault(_column_of(c.x0, c.x1, cols), []).append(c.text)
        cells = [f"{names[j]}: " * bool(names[j]) + " ".join(v) for j, v in sorted(values.items())]
        out.append(" | ".join([label or "(no label)", *cells]))
    return out + [pending] * bool(pending)


def _continues(text: str) -> bool:
    """Whether a label line breaks off mid-phrase (its next line goes on with it)."""
    return text.endswith((",", "-", "/", " and", " of", " to", " for", " in", " the", " on", " from"))


def _join(a: str, b: str) -> str:
    """Two pieces of a wrapped label: no space after a hyphen or slash that broke a word."""
    return a + b if not a or not b or (a.endswith(("-", "/")) and not a.endswith(" -")) else f"{a} {b}"


def tables_from_words(words: list[dict[str, Any]], width: float) -> list[list[str]]:
    """The tables among a page's words (dicts with `x0`, `x1`, `top`, `bottom`, `text`, as pdfplumber
    gives them; `width` is the page's), each as its text lines."""
    ws = [
        _Word(float(w["x0"]), float(w["x1"]), float(w["top"]), float(w["bottom"]), text)
        for w in words
        if w.get("upright", True) and (text := _FORMAT.sub("", str(w["text"])).strip())
    ]
    if not ws:
        return []
    lines = _lines(ws)
    height = statistics.median(ln.bottom - ln.top for ln in lines)
    left = min(ln.words[0].x0 for ln in lines)
    for ln in lines:  # a row labelled by a number (a year, "2026-2030"): its label at the left margin
        if ln.cells and not ln.label and len(ln.cells) >= 2 and ln.cells[0].x0 < left + 0.3 * width:
            ln.label, ln.label_x1, ln.cells = ln.cells[0].text, ln.cells[0].x1, ln.cells[1:]
    for k in range(len(lines) - 2, 0, -1):  # values set between a label's two lines: that label's row
        ln, near = lines[k], [x for x in lines[k - 1 : k + 2 : 2] if abs(x.top - lines[k].top) < height]
        if ln.cells and not ln.label and near and not any(x.cells for x in near):
            label_x1 = max(x.words[-1].x1 for x in near)
            if label_x1 < ln.cells[0].x0 and not ln.heading:
                ln.label, ln.label_x1 = " ".join(x.text for x in near), label_x1
                lines[k - 1 : k + 2] = [x for x in lines[k - 1 : k + 2] if not any(x is y for y in near)]
    # blocks: labelled rows with values, joined across at most 4 lines and 4 line heights
    tables: list[list[str]] = []
    used = i = 0
    while i < len(lines):
        if not lines[i].row:
            i += 1
            continue
        start = end = i
        for j in range(i + 1, len(lines)):
            if j - end > 5 or lines[j].top - lines[j - 1].bottom >= 4 * height:
                break
            nxt = lines[j + 1] if j + 1 < len(lines) else None
            if _is_prose(lines[j], width) and not (nxt and nxt.cells and nxt.label[:1].islower()):
                break  # a paragraph, not a long label wrapped onto the next row
            end = j if lines[j].cells else end
        body = lines[start : end + 1]
        body = body[: _new_header(body)]
        while not body[-1].cells:  # text after the last row: notes, or the next table's title
            body.pop()
        end = start + len(body) - 1
        header: list[_Line] = []
        for k in range(start - 1, max(used, start - MAX_HEADER_LINES) - 1, -1):
            if (header or lines[start:])[0].top - lines[k].bottom > 3 * height:
                break
            if _is_prose(lines[k], width) or _NOTE.match(lines[k].text):
                if header and header[0].text[:1].islower():
                    header.pop(0)  # the end of the paragraph above, not a header
                break
            header.insert(0, lines[k])
        if table := _table(header, body):
            tables.append(table)
            used = end + 1
        i = end + 1
    return tables


def _new_header(body: list[_Line]) -> int | None:
    """Where a new header starts between rows: years or dates, or text over the values alone."""
    x0 = min(c.x0 for r in body if r.row for c in r.cells)
    for k, ln in enumerate(body[1:], 1):
        over = ln.heading or (not ln.cells and all(s[0].x0 > x0 - 40 for s in ln.segments))
        if over and any(r.row for r in body[:k]) and any(r.row for r in body[k:]):
            return k
    return None


class PdfTables:
    """One PDF opened once with pdfplumber; `page(i)`: page `i`'s tables. One pdfminer cannot parse
    has none (PDFium still reads its pages). Raises `MMRAGError` when pdfplumber is not installed."""

    def __init__(self, path: Path | str) -> None:
        try:
            import pdfplumber
        except ImportError as e:
            raise MMRAGError(
                "ingest.pdf_tables needs pdfplumber: pip install pdfplumber (or pip install 'mmrag[tables]')"
            ) from e
        try:
            self._pdf: Any = pdfplumber.open(str(path))
            self._pages: list[Any] = list(self._pdf.pages)
        except Exception:
            self._pdf, self._pages = None, []

    def page(self, i: int) -> list[str]:
        """Page `i`'s tables (zero-based), each one text: a header line, then a line per row."""
        if not 0 <= i < len(self._pages):
            return []
        page = self._pages[i]
        try:
            words = page.extract_words(x_tolerance=1.5, y_tolerance=2)
            return ["\n".join(t) for t in tables_from_words(words, float(page.width))]
        except Exception:
            return []
        finally:
            page.close()  # frees the page's parsed layout

    def close(self) -> None:
        if self._pdf is not None:  # pdfplumber's close: the file and its pages' caches
            self._pdf.close()
            self._pdf = None


def table_windows(text: str, size: int) -> list[str]:
    """A table's text in windows of at most about `size` words, each after the table's header line."""
    head, _, rows = text.partition("\n")
    if len(text.split()) <= size or not rows:
        return [text]
    room = max(size - len(head.split()), size // 2)
    return [f"{head}\n{w}" for w in word_windows(rows, room, 0)]
