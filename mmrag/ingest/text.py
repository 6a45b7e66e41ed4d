"""Text files and JSON/JSONL corpora into word-window chunks.

Record formats understood (one record per object):

- MultiHop-RAG `corpus.json`: a list of `{title, author, source, published_at, category, url, body}`;
  the body is chunked, the other fields go into every chunk's `meta`.
- The evidence file `articles_facts.jsonl`: `{title, ..., facts: [sentences], doc_id}` per line; the
  facts, one a line, are the text.
- Any list (or JSONL) of objects with a `body`, `text` or `content` string, or a top-level object
  holding one such list (`{"data": [...]}`).

Scalar fields and short lists of scalars are kept in `meta`; nested objects are dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.types import Chunk, IngestError, MMRAGError, NothingToIndex

if TYPE_CHECKING:
    from mmrag.config import IngestConfig

TEXT_FIELDS = ("body", "text", "content")
LIST_FIELDS = ("facts",)
_META_LIST_MAX = 64

_WORD = re.compile(r"\S+")
# a word that ends a sentence: final punctuation, then maybe closing quotes or brackets
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’»)\]]*$")


def decode_text(data: bytes) -> str:
    """Bytes to text: UTF-16 with a BOM, UTF-8 (BOM dropped), else cp1252, else latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # maps every byte: never fails


def word_windows(text: str, size: int, overlap: int) -> list[str]:
    """Split text into windows of at most `size` words, neighbours sharing up to `overlap` words.

    A window ends at the last sentence end in its second half when there is one (else at the last
    line break there, else after `size` words), and the next one starts at the first sentence start
    inside the overlap when there is one, so sentences shorter than half a window are never cut in
    two. Windows are slices of the original text (line breaks and spacing kept).

    Args:
        text: Any text.
        size: Most words per window (>= 1).
        overlap: Most words shared by neighbouring windows (0 <= overlap < size).

    Returns:
        The windows in order; empty when the text has no words.

    Raises:
        MMRAGError: `size` or `overlap` out of range.
    """
    if size < 1 or not 0 <= overlap < size:
        raise MMRAGError(
            f"chunk_words must be >= 1 and 0 <= chunk_overlap < chunk_words (got {size}, {overlap})"
        )
    spans = [m.span() for m in _WORD.finditer(text)]
    n = len(spans)
    # how good a cut after word i is: 2 it ends a sentence, 1 a line break follows, 0 neither
    strength = []
    for i, (s, e) in enumerate(spans):
        gap = text[e : spans[i + 1][0]] if i + 1 < n else ""
        strength.append(2 if _SENTENCE_END.search(text, s, e) else int("\n" in gap))
    out: list[str] = []
    i = 0
    while i < n:
        stop = min(i + size, n)
        if stop < n:
            half = i + max(size // 2, 1)
            for want in (2, 1):
                cut = next((k + 1 for k in range(stop - 1, half - 1, -1) if strength[k] >= want), None)
                if cut is not None:
                    stop = cut
                    break
        out.append(text[spans[i][0] : spans[stop - 1][1]])
        if stop >= n:
            break
        nxt = max(stop - overlap, i + 1)
        i = next((k for k in range(nxt, stop) if strength[k - 1] == 2), nxt)
    return out


def read_text(path: Path) -> str:
    """A whole text file, decoded by `decode_text`.

    Raises:
        IngestError: unreadable, or binary (NUL bytes).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise IngestError(f"cannot read file: {e.strerror or e}") from e
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IngestError("binary data, not text")
    return decode_text(data)


def iter_text_chunks(path: Path, cfg: IngestConfig) -> Iterator[Chunk]:
    """Chunks of a `.txt`/`.md` file (locator `chunk=j`), or of a JSON/JSONL corpus.

    Raises:
        IngestError: unreadable, binary, no words, invalid JSON or no text records.
    """
    ext = path.suffix.lower()
    if ext == ".json":
        yield from _record_chunks(_json_records(path), path, cfg)
        return
    if ext in (".jsonl", ".ndjson"):
        yield from _record_chunks(_jsonl_records(path), path, cfg)
        return
    windows = word_windows(read_text(path), cfg.chunk_words, cfg.chunk_overlap)
    if not windows:
        raise IngestError("no text in file")
    for j, window in enumerate(windows):
        yield Chunk(modality="text", path=str(path), locator=f"chunk={j}", text=window)


def _json_records(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise IngestError(f"JSON is not UTF-8: {e}") from e
    except (ValueError, RecursionError) as e:  # ValueError: also numbers over Python's digit limit
        raise IngestError(f"invalid JSON: {_json_problem(e)}") from e
    except OSError as e:
        raise IngestError(f"cannot read file: {e.strerror or e}") from e
    if isinstance(data, dict):
        if _record_text(data) is None:
            # a wrapper such as {"data": [...]}: take its first list of objects
            lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
            data = lists[0] if lists else [data]
        else:
            data = [data]
    if not isinstance(data, list):
        raise IngestError("JSON holds neither a list of records nor a record")
    for i, rec in enumerate(data):
        yield f"record={i}", rec


def _jsonl_records(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield f"line={n}", json.loads(line)
                except (ValueError, RecursionError) as e:
                    raise IngestError(f"invalid JSON on line {n}: {_json_problem(e)}") from e
    except UnicodeDecodeError as e:
        raise IngestError(f"JSONL is not UTF-8: {e}") from e
    except OSError as e:
        raise IngestError(f"cannot read file: {e.strerror or e}") from e


def _json_problem(e: Exception) -> str:
    return "nested too deeply" if isinstance(e, RecursionError) else str(e)


def _record_text(rec: dict[str, Any]) -> tuple[str, str] | None:
    """(field, text) of a record, or None when it has no text."""
    for key in TEXT_FIELDS:
        value = rec.get(key)
        if isinstance(value, str) and value.strip():
            return key, value
    for key in LIST_FIELDS:
        value = rec.get(key)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return key, "\n".join(v.strip() for v in value)
    return None


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _meta(rec: dict[str, Any], skip: str) -> dict[str, Any]:
    scalar = (str, int, float, bool, type(None))
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if key == skip:
            continue
        if isinstance(value, scalar):
            out[key] = value
        elif (
            isinstance(value, list)
            and len(value) <= _META_LIST_MAX
            and all(isinstance(v, scalar) for v in value)
        ):
            out[key] = list(value)
    # A calendar date beside an ISO timestamp, so a question's "on October 22, 2023" can become a
    # keyword filter (see mmrag/query_filters.py) without datetime payload indexes.
    published = out.get("published_at")
    if isinstance(published, str) and _ISO_DATE.match(published):
        out["published_date"] = published[:10]
    return out


def _record_chunks(records: Iterator[tuple[str, Any]], path: Path, cfg: IngestConfig) -> Iterator[Chunk]:
    found = False
    for where, rec in records:
        if not isinstance(rec, dict):
            raise IngestError(f"{where.replace('=', ' ')}: expected a JSON object, got {type(rec).__name__}")
        got = _record_text(rec)
        if got is None:
            continue  # a record without text (a header row, an empty article): nothing to index
        key, text = got
        meta = _meta(rec, skip=key)
        for j, window in enumerate(word_windows(text, cfg.chunk_words, cfg.chunk_overlap)):
            found = True
            yield Chunk(
                modality="text", path=str(path), locator=f"{where};chunk={j}", text=window, meta=dict(meta)
            )
    if not found:
        fields = ", ".join((*TEXT_FIELDS, *LIST_FIELDS))
        raise NothingToIndex(f"no text records: expected JSON objects with a non-empty {fields} field")
