"""Document metadata at index time: title, entity, document type, period and source, by rules.

Every chunk of a file carries its document's fields in `meta` (and so in the stored payload) as
`doc_title`, `doc_entity`, `doc_aliases`, `doc_type`, `doc_year`, `doc_quarter`, `doc_date` and
`doc_source`. They are read, later sources winning field by field:
1. the first pages' text (an SEC cover page's "FORM 10-K", "For the fiscal year ended ...", the
   line above "(Exact name of registrant ...)", "Trading Symbol(s)"; a press release's
   "(NYSE: JNJ)" and "Fourth-Quarter 2022 results") and the PDF's own metadata (Title, Subject);
2. the file name (`ACME_2022_10K.pdf`, `acme-corp fy22 annual report.pdf`, `Acme 2023Q2 10-Q.pdf`,
   `ACME_8K_dated-2022-07-01.pdf`): a name that a person gave the file beats a guess from its text;
3. a `--meta` mapping (JSONL or CSV rows with `path` and the fields; `ingest.meta_file`);
4. a sidecar `<file>.meta.json` beside the file.
Aliases collect every name form seen (file name, registrant line, tickers), so a question may name
the company either way. Nothing here knows any particular collection.

`contextual` chunks: `context` (title, entity, type, period and the page's section heading) is
prefixed to the text the embedder and BM25 read; the displayed `text` stays as it was.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from mmrag.ingest.periods import doc_type_in, find_day, period_label
from mmrag.types import Chunk, IngestError

FIELDS = ("title", "entity", "aliases", "type", "year", "quarter", "date", "source")
"""Document fields; stored in the payload as `doc_<field>`."""
HEAD_PAGES = 2
"""Pages (or text chunks) of a file read before its first chunk is given out."""
_LEGAL = {
    "inc", "incorporated", "corp", "corporation", "co", "company", "plc", "ltd", "limited", "llc",
    "lp", "sa", "ag", "nv", "se", "holdings", "group", "the",
}  # fmt: skip
_TICKER_STOP = {"NYSE", "NASDAQ", "LLC", "INC", "PLC", "USD", "CLASS", "NONE", "II", "III", "NA", "THE"}
_YEAR = r"(?:19|20)\d\d"
_NAME_TOKEN = re.compile(r"[A-Za-z0-9&]+")


def _clean_entity(name: str) -> str:
    name = re.sub(r"[\s_]+", " ", name).strip(" ,.-_")
    return name


def aliases_of(name: str) -> list[str]:
    """Name forms a question may use: the name, without legal suffixes, and its all-capital words."""
    words = _NAME_TOKEN.findall(name)
    out = [name.strip()]
    core = [w for w in words if w.lower() not in _LEGAL]
    if core:
        out.append(" ".join(core))
    if not name.isupper():  # "MGM Resorts International": "MGM" is a name of its own
        out += [w for w in core if w.isupper() and len(w) >= 2 and not w.isdigit() and len(core) > 1]
    return list(dict.fromkeys(a for a in out if a))


# -- file name ---------------------------------------------------------------------------------------
def from_file_name(path: Path) -> dict[str, Any]:
    """Entity, type, year, quarter and date written in a file name (whatever separators it uses)."""
    stem = path.name.split(".")[0]
    out: dict[str, Any] = {}
    if day := find_day(stem.replace("_", " ")):
        out["date"] = day
    spaced = re.sub(r"[_\-.]+", " ", stem)
    if t := doc_type_in(spaced, strict=False):
        out["type"] = t
    m = re.search(rf"(?i)(?:\bFY\s?)?({_YEAR})\s?Q([1-4])\b|\bQ([1-4])\s?(?:FY)?\s?({_YEAR})\b", spaced)
    if m:
        out["year"], out["quarter"] = int(m.group(1) or m.group(4)), int(m.group(2) or m.group(3))
    elif m := re.search(rf"(?i)\bFY\s?({_YEAR}|\d\d)\b|\b({_YEAR})\b", spaced):
        y = m.group(1) or m.group(2)
        out["year"] = int(y) if len(y) == 4 else 2000 + int(y)
    # the entity: the words before the first period, type or date word
    cut = re.search(
        rf"(?i)\b(?:FY\s?\d|{_YEAR}|Q[1-4]\b|dated\b|10 ?[KQ]\b|8 ?K\b|annual|quarterly|earnings)", spaced
    )
    entity = _clean_entity(spaced[: cut.start()] if cut else spaced)
    if entity and re.search(r"[A-Za-z]{2}", entity):
        out["entity"] = entity
    return out


# -- text --------------------------------------------------------------------------------------------
_REGISTRANT = re.compile(
    r"(?m)^(?:.*_{3,}\s*)?([^\n_]{2,80}?)\s*\n?\(?\s*Exact name of (?:the )?registrant", re.I
)
_EXCHANGE_TICKER = re.compile(
    r"\((?:NYSE|NASDAQ|Nasdaq|NYSE American|LSE|TSX|ASX)\s*:\s*([A-Z][A-Z.]{0,5})\)"
)
_LISTED = re.compile(r"(?<![\w$.])([A-Z]{1,5})\s+(?:The\s+)?(?:New York|NYSE|Nasdaq|NASDAQ|Chicago|London)")
_TRADING = re.compile(r"Trading\s+Symbol\(?s?\)?(.{0,400})", re.S | re.I)
_RELEASE_ENTITY = re.compile(
    r"(?:^|\n|[-–—)]\s)([A-Z][\w&.,' ]{1,60}?(?:,? Inc\.|,? Corp(?:oration|\.)?|,? plc|,? Ltd\.?|,? Co\.)?)"
    r"\s*\((?:NYSE|NASDAQ|Nasdaq)\s*:"
)
_FISCAL_END = re.compile(r"(?i)for the (fiscal )?year ended\s+([A-Za-z]+\.?\s+\d{1,2},?\s+\d{4})")
_QUARTER_END = re.compile(r"(?i)for the quarterly period ended\s+([A-Za-z]+\.?\s+\d{1,2},?\s+\d{4})")
_EVENT_DATE = re.compile(r"(?i)date of report[^:]{0,60}:\s*([A-Za-z]+\.?\s+\d{1,2},?\s+\d{4})")
_QUARTER_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4}
_RELEASE_PERIOD = re.compile(
    rf"(?i)\b(?:(first|second|third|fourth)[- ]quarter(?:\s+(?:of\s+)?(?:fiscal\s+)?({_YEAR}))?|"
    rf"({_YEAR})\s+(first|second|third|fourth)[- ]quarter|Q([1-4])\s*({_YEAR}))"
)


def _tickers(text: str) -> list[str]:
    found = _EXCHANGE_TICKER.findall(text)
    if m := _TRADING.search(text):
        # the cover's table: "Common Stock, $1.00 par value   JNJ   New York Stock Exchange"
        found += [t for t in _LISTED.findall(m.group(1)) if t not in _TICKER_STOP]
    return list(dict.fromkeys(t.rstrip(".") for t in found))


def from_text(text: str, pdf_meta: dict[str, str] | None = None) -> dict[str, Any]:
    """Fields read from a document's first pages (and its PDF Title/Subject)."""
    pdf_meta = pdf_meta or {}
    out: dict[str, Any] = {}
    head = text[:8000]
    subject = pdf_meta.get("Subject", "") + " " + pdf_meta.get("Keywords", "")
    if t := doc_type_in(head[:3000]) or doc_type_in(subject):
        out["type"] = t
    if m := _REGISTRANT.search(head):
        out["entity"] = _clean_entity(m.group(1))
    elif m := _RELEASE_ENTITY.search(head):
        out["entity"] = _clean_entity(m.group(1))
    if tickers := _tickers(head):
        out["tickers"] = tickers
    if m := _FISCAL_END.search(head):
        out["date"] = find_day(m.group(2))
        if out["date"]:
            out["year"] = int(out["date"][:4])
    elif m := _QUARTER_END.search(head):
        out["date"] = find_day(m.group(1))
        out.setdefault("type", "10-Q")
    elif m := _EVENT_DATE.search(head):
        out["date"] = find_day(m.group(1))
    m = _RELEASE_PERIOD.search(head[:3000]) if out.get("type") in (None, "earnings release") else None
    if m:
        q = _QUARTER_WORDS.get((m.group(1) or m.group(4) or "").lower()) or int(m.group(5) or 0)
        year = m.group(2) or m.group(3) or m.group(6)
        if q and year:
            out.setdefault("type", "earnings release")
            out.update(year=int(year), quarter=q)
    if "date" not in out and (day := find_day(head[:400])):
        out["date"] = day
    if "year" not in out and out.get("date"):
        out["year"] = int(out["date"][:4])
    title = (pdf_meta.get("Title") or "").strip()
    # EDGAR accession numbers, "Document", "pfe-20230702": file names, not titles
    if title and len(re.findall(r"[A-Za-z]{3,}", title)) >= 2 and not title.lower().startswith("microsoft"):
        out["title"] = title
    return {k: v for k, v in out.items() if v not in (None, "", [])}


# -- overrides ---------------------------------------------------------------------------------------
def _norm_fields(raw: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = k[4:] if k.startswith("doc_") else k
        if key in ("path", "file") or v in (None, ""):
            continue
        if key not in FIELDS and key != "tickers":
            raise IngestError(f"{where}: unknown metadata field {k!r} (use {', '.join(FIELDS)})")
        if key in ("year", "quarter"):
            try:
                v = int(v)
            except (TypeError, ValueError):
                raise IngestError(f"{where}: {k} must be a number, not {v!r}") from None
        if key in ("aliases", "tickers") and isinstance(v, str):
            v = [a.strip() for a in re.split(r"[;|]", v) if a.strip()]
        if key == "type":
            v = doc_type_in(str(v), strict=False) or str(v)
        out[key] = v
    return out


def sidecar_path(path: Path) -> Path:
    """`<file>.meta.json` beside `path`."""
    return path.with_name(path.name + ".meta.json")


def read_sidecar(path: Path) -> dict[str, Any]:
    """The fields of `path`'s sidecar, or {} when it has none; IngestError when it is malformed."""
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IngestError(f"{side.name}: cannot read metadata: {e}") from e
    if not isinstance(data, dict):
        raise IngestError(f"{side.name}: metadata must be a JSON object")
    return _norm_fields(data, side.name)


@lru_cache(maxsize=4)
def _mapping(meta_file: str, mtime: float) -> dict[str, dict[str, Any]]:
    p = Path(meta_file)
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix.lower() == ".csv":
            rows: list[dict[str, Any]] = list(csv.DictReader(text.splitlines()))
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        raise IngestError(f"{p}: cannot read the metadata mapping: {e}") from e
    out: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        key = row.get("path") or row.get("file") if isinstance(row, dict) else None
        if not key:
            raise IngestError(f"{p}: row {i + 1} has no `path`")
        out[str(key)] = _norm_fields(row, f"{p.name} row {i + 1}")
    return out


def from_mapping(path: Path, meta_file: str | None) -> dict[str, Any]:
    """The `--meta` row of `path`: matched by absolute path, by the path as written, or by file name."""
    if not meta_file:
        return {}
    try:
        rows = _mapping(str(Path(meta_file).absolute()), Path(meta_file).stat().st_mtime)
    except OSError as e:
        raise IngestError(f"{meta_file}: cannot read the metadata mapping: {e}") from e
    for key, fields in rows.items():
        k = Path(key)
        if (k.is_absolute() and k == path) or str(path).endswith("/" + key.lstrip("./")) or key == path.name:
            return fields
    return {}


# -- the whole document ------------------------------------------------------------------------------
def document_meta(
    path: Path,
    head_text: str,
    pdf_meta: dict[str, str] | None,
    meta_file: str | None,
    rules: bool = True,
) -> dict[str, Any]:
    """The document's fields (`FIELDS`), merged from text, file name, mapping and sidecar.

    With `rules` off (images, videos, record corpora) only a mapping row or a sidecar gives fields.
    """
    fields: dict[str, Any] = {}
    aliases: list[str] = []
    given = [from_mapping(path, meta_file), read_sidecar(path)]
    if not rules and not any(given):
        return {}
    parts = [from_text(head_text, pdf_meta), from_file_name(path)] if rules else [{}, {}]
    parts += given
    if "entity" in parts[0]:  # the registrant line is the official name; the file name's stays an alias
        parts[1]["aliases"] = aliases_of(parts[1].pop("entity", ""))
    for part in parts:
        if "entity" in part:
            aliases += aliases_of(str(part["entity"]))
        aliases += [str(a) for a in part.pop("aliases", []) or []] + [str(t) for t in part.pop("tickers", [])]
        fields.update(part)
    if aliases:
        fields["aliases"] = list(dict.fromkeys(aliases))
    if "title" not in fields:
        bits = [fields.get("entity"), fields.get("type"), period_label(fields)]
        fields["title"] = " ".join(str(b) for b in bits if b) or path.stem
    fields.setdefault("source", path.name)
    return {f"doc_{k}": fields[k] for k in FIELDS if k in fields}


def context_line(doc: dict[str, Any], heading: str | None) -> str:
    """The context prefixed to a chunk's embedded text: title, entity, type, period, section."""
    parts = [doc.get("doc_title"), doc.get("doc_entity"), doc.get("doc_type")]
    label = period_label({k[4:]: v for k, v in doc.items()})
    parts += [label, heading]
    seen: list[str] = []
    for p in parts:
        if p and not any(str(p).lower() in s.lower() for s in seen):
            seen.append(str(p))
    return " | ".join(seen)


_HEADING_SKIP = re.compile(r"(?i)^(table of contents|page \d+|\d+|index)$")


def section_heading(text: str | None) -> str | None:
    """A page's heading: its first short line written in capitals or Title Case (None if none)."""
    for line in (text or "").splitlines()[:12]:
        line = line.strip(" .:-_\t")
        words = line.split()
        if not 2 <= len(words) <= 10 or _HEADING_SKIP.match(line) or not re.search(r"[A-Za-z]{3}", line):
            continue
        caps = sum(w[0].isupper() for w in words if w[0].isalpha())
        if line.isupper() or caps >= max(2, int(0.7 * len(words))):
            return line[:100]
    return None


def with_document_meta(
    chunks: Iterator[Chunk], path: Path, meta_file: str | None, contextual: bool, rules: bool = True
) -> Iterator[Chunk]:
    """`chunks` of one file with the document's fields in every chunk's meta (and `context`).

    The first `HEAD_PAGES` pages (or text chunks) are held back until the fields are read from them.
    Record corpora (a JSON list of articles) keep their records' own fields; they get `context`
    from each record's title, source and date instead. `rules` off (images, videos, JSON
    records): fields only from a sidecar or a mapping row.
    """
    head: list[Chunk] = []
    doc: dict[str, Any] | None = None
    heading: str | None = None
    for c in chunks:
        if doc is None:
            head.append(c)
            pages = sum(1 for h in head if h.modality == "page")
            if not (_is_record(c) or pages > HEAD_PAGES or (not pages and len(head) >= HEAD_PAGES)):
                continue
            doc = _doc_of(head, path, meta_file, rules)
            for h in head:
                heading = _annotate(h, doc, heading, contextual)
                yield h
            continue
        heading = _annotate(c, doc, heading, contextual)
        yield c
    if doc is None and head:
        doc = _doc_of(head, path, meta_file, rules)
        for h in head:
            heading = _annotate(h, doc, heading, contextual)
            yield h


def _is_record(c: Chunk) -> bool:
    return any(k in c.meta for k in ("source", "published_at", "author"))


def _doc_of(head: list[Chunk], path: Path, meta_file: str | None, rules: bool) -> dict[str, Any]:
    if head and _is_record(head[0]):
        return {}
    text = "\n".join(c.text or "" for c in head if c.modality in ("page", "image")) or "\n".join(
        c.text or "" for c in head
    )
    title = next((str(c.meta["title"]) for c in head if c.meta.get("title")), "")
    return document_meta(path, text, {"Title": title} if title else None, meta_file, rules)


def _annotate(c: Chunk, doc: dict[str, Any], heading: str | None, contextual: bool) -> str | None:
    if c.modality == "page" or (c.modality == "text" and c.page is None):
        heading = section_heading(c.text)
    c.meta.update(doc)
    if heading:
        c.meta["section"] = heading
    if contextual:
        if doc:
            c.meta["context"] = context_line(doc, heading)
        elif _is_record(c):
            bits = [c.meta.get("title"), c.meta.get("source"), c.meta.get("published_date")]
            c.meta["context"] = " | ".join(str(b) for b in bits if b)
    return heading
